"""Producer: a publisher's WebRTC session (WHIP ingest), terminated by aiortc without decoding.

The receiver's RTP handler is wrapped per instance (media.aiortc_compat.set_receiver_handlers): packets go to the router first (the
fan-out of a burst leaves as soon as the burst has been read, see ``media.ingest.burst_boundary``), then to aiortc's
own handler so NACKs, receiver reports and REMB towards the publisher keep working; once the socket
is drained (``media.transport.socket_drain``) that handler runs after the burst has left. Once connected,
the speaker's SRTP is taken off the ICE socket where it arrives (``media.transport.webrtc_transport``), not
through aioice's queue and aiortc's DTLS receive task. aiortc's decoder thread is replaced by
``media.ingest.frame_tap`` (no decoder ever runs).

A publisher may send its own low rendition (the speaker page does): the offer's second video m-line
is the program's ``low`` track when this publisher's picture is on the program
(media.renditions.keeper selects it), so the server transcodes nothing for it. Its source is
``low``, never in ``sources`` (per kind: the picture and sound the recorder and the stage take as
this publisher's).
"""

from __future__ import annotations

import asyncio
import logging

from aiortc import RTCPeerConnection, RTCSessionDescription, sdp
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtcpSrPacket, unwrap_rtx

from media import aiortc_compat
from media.ingest import frame_tap
from media.ingest.burst_boundary import BurstBoundary
from media.core.codecs import codec_key, is_rtx, prefer_codecs
from media.transport.ice import enlarge_socket_buffers
from media.transport.webrtc_transport import WebRtcTransport, patient_consent
from media.core.router import Router
from media.core.sdp_check import check_offer
from media.core.session import Session
from media.core.source import SourceStream

log = logging.getLogger(__name__)

LOW_VIDEO_M_LINE = 2  # the offer's second video m-line carries the publisher's own low rendition


class _LowKeyframes:
    """Keyframe requests for the publisher's low rendition go to that track's own sender."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer

    def request_keyframe(self) -> None:
        self.producer.request_keyframe("low")


def _bundle_every_track(pc: RTCPeerConnection, offer: sdp.SessionDescription) -> None:
    """Put every bundled track on the BUNDLE's one transport. aiortc creates a second track of a kind
    on the first one's transport and then moves only the first onto the BUNDLE's (a browser's offer
    starts with audio): the second video track would never receive, its packets going to the first."""
    bundle = next((g for g in offer.group if g.semantic == "BUNDLE" and g.items), None)
    if bundle is None:
        return
    by_mid = {t.mid: t for t in pc.getTransceivers()}
    primary = by_mid.get(str(bundle.items[0]))
    if primary is None:
        return
    transport = primary.receiver.transport
    for mid in bundle.items[1:]:
        transceiver = by_mid.get(str(mid))
        if transceiver is not None and transceiver.receiver.transport is not transport:
            transceiver.receiver.setTransport(transport)
            transceiver.sender.setTransport(transport)


class Producer(Session):
    def __init__(
        self, router: Router, pc: RTCPeerConnection, role: str = "speaker", subject_id: str | None = None
    ) -> None:
        """``role``: "speaker" (the hall) or "point" (a connection point holding the floor, whose
        ``subject_id`` is the point's id); the conference's stage (media.floor.stage) puts the
        sources on the program, the producer only adds them to the router."""
        super().__init__(router, pc)
        self.role = role
        self.subject_id = subject_id
        self.sources: dict[str, SourceStream] = {}  # per kind: the publisher's full picture and sound
        self.low: SourceStream | None = None  # its own low rendition, when it sends one
        self._receivers: dict[str, RTCRtpReceiver] = {}  # per track: "audio", "video", "low"
        self._media_ssrc: dict[str, int] = {}
        self.foreign_packets = 0  # RTP under an SSRC other than the track's first: dropped
        self._burst = BurstBoundary(pc, router.flush)
        self.transports: list[WebRtcTransport] = []  # the speaker's SRTP and drained socket, once connected

    async def answer(self, offer_sdp: str) -> str:
        pc = self.pc
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        _bundle_every_track(pc, check_offer(offer_sdp, "send"))
        videos = 0
        for transceiver in pc.getTransceivers():
            codecs = prefer_codecs(aiortc_compat.codecs(transceiver), transceiver.kind, only_best=True)
            aiortc_compat.set_codecs(transceiver, codecs)
            if not codecs:
                continue
            track = transceiver.kind
            if track == "video":
                videos += 1
                track = "low" if videos == LOW_VIDEO_M_LINE else track
            self._hook_receiver(track, transceiver.receiver, codecs)
        patient_consent(pc)  # losing the speaker to a busy loop would end the conference
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        enlarge_socket_buffers(pc)
        return pc.localDescription.sdp

    def _hook_receiver(self, track: str, receiver: RTCRtpReceiver, codecs: list) -> None:
        """``track``: "audio", "video" or "low" (the publisher's own low rendition)."""
        kind = "video" if track == "low" else track
        by_pt = {c.payloadType: c for c in codecs}
        media_codec = next(c for c in codecs if not is_rtx(c))
        source = SourceStream(kind, codec_key(media_codec), media_codec.clockRate, self.id)
        keyframes: _LowKeyframes | Producer | None = None
        if track == "low":
            self.low = source
            keyframes = _LowKeyframes(self)
            # A publisher's congestion control takes a REMB as the bound on everything it sends:
            # one estimate over both pictures, not one per track (each bounding both to its own rate).
            aiortc_compat.share_bitrate_estimator(receiver, self._receivers["video"])
        else:
            self.sources[kind] = source
            keyframes = self if kind == "video" else None
        self._receivers[track] = receiver
        router = self.router
        burst = self._burst
        router.add_source(source, keyframes=keyframes, select=False)
        original_rtp = aiortc_compat.rtp_handler(receiver)
        original_rtcp = aiortc_compat.rtcp_handler(receiver)

        video = kind == "video"  # frames are held until their last packet (media.ingest.burst_boundary)

        ssrcs: dict[bool, int] = {}  # rtx? -> the one SSRC this track's packets may carry

        async def handle_rtp(packet, arrival_time_ms: int) -> None:  # type: ignore[no-untyped-def]
            frame_open = None
            codec = by_pt.get(packet.payload_type)
            if codec is not None:
                # One media SSRC (and one RTX SSRC) per track, the first seen: aiortc's RTP router
                # learns any new SSRC by payload type, so packets under another one (a buggy or
                # hostile publisher) would be mixed into the source and its jitter buffer.
                if ssrcs.setdefault(is_rtx(codec), packet.ssrc) != packet.ssrc:
                    self.foreign_packets += 1
                    return
            try:
                if codec is not None:
                    if is_rtx(codec):
                        apt = codec.parameters.get("apt")
                        if apt in by_pt and len(packet.payload) >= 2:
                            recovered = unwrap_rtx(packet, payload_type=apt, ssrc=packet.ssrc)
                            router.on_rtp(
                                source,
                                recovered.sequence_number,
                                recovered.timestamp,
                                recovered.marker,
                                recovered.payload,
                            )
                    elif packet.payload:
                        if video:
                            frame_open = not packet.marker
                        self._media_ssrc[track] = packet.ssrc
                        router.on_rtp(
                            source,
                            packet.sequence_number,
                            packet.timestamp,
                            packet.marker,
                            packet.payload,
                        )
            except Exception:  # an exception here would kill aiortc's receive loop for good
                log.exception("forwarding failed")
            burst.packet(frame_open)
            if burst.draining:
                burst.defer(original_rtp(packet, arrival_time_ms))  # after the burst has left
            else:
                await original_rtp(packet, arrival_time_ms)

        async def handle_rtcp(packet) -> None:  # type: ignore[no-untyped-def]
            if isinstance(packet, RtcpSrPacket):
                router.sender_report(
                    source, packet.sender_info.ntp_timestamp, packet.sender_info.rtp_timestamp
                )
            await original_rtcp(packet)

        aiortc_compat.set_receiver_handlers(receiver, handle_rtp, handle_rtcp)
        frame_tap.drop_frames(receiver)

    def _connected(self) -> None:
        for receiver in self._receivers.values():  # one transport for both kinds when bundled
            transport = WebRtcTransport.take(receiver.transport, rtp=True, burst=self._burst)
            if transport is not None and transport not in self.transports:
                self.transports.append(transport)

    def stats(self) -> dict:
        transports = [t.stats() for t in self.transports]
        return {
            # SRTP and SRTCP taken off the speaker's socket where they arrive
            "srtp_intake_datagrams": sum(t["srtp"] + t["srtcp"] for t in transports),
            # how the speaker's packets left for the fan-out: packets / flushes = burst size
            "burst_packets": self._burst.packets,
            "burst_flushes": self._burst.flushes,
            # reads of the speaker's socket: datagrams / wake-ups = datagrams per loop iteration
            "drain_wakeups": sum(t["drain_wakeups"] for t in transports),
            "drain_datagrams": sum(t["drain_datagrams"] for t in transports),
        }

    def request_keyframe(self, track: str = "video") -> None:
        """A PLI to the publisher for ``track``'s picture ("video", or "low": its own low rendition)."""
        receiver = self._receivers.get(track)
        if receiver is None:
            return
        ssrc = self._media_ssrc.get(track)
        if ssrc is not None:
            asyncio.ensure_future(aiortc_compat.send_pli(receiver, ssrc))

    def _leave_router(self) -> None:
        self._burst.close()
        for source in [*self.sources.values(), *([self.low] if self.low is not None else [])]:
            self.router.remove_source(source)
