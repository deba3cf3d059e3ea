"""Consumer: a subscriber's WebRTC session (WHEP playback) fed by raw RTP forwarding.

aiortc is used only for ICE, DTLS-SRTP keys, SDP and its RTCP handlers. The sender's media loop is
parked; the router writes packets straight into the socket, protected by the stream's own AES-GCM
context (media.egress.srtp_gcm) or the SRTP session (see ``OutboundStream``). RTCP from the subscriber is
taken off the socket where it arrives (media.transport.webrtc_transport) and handed to the senders: NACKs are
answered from the shared history, PLI/FIR become merged keyframe requests, receiver reports feed the
link quality. Our own sender reports (media.egress.sender_report) keep audio and video in sync.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtcpRrPacket, unpack_remb_fci

from media import aiortc_compat
from media.egress import fanout, srtp_gcm
from media.core.codecs import codec_key, is_rtx, prefer_codecs
from media.transport.receiver_reports import ReportBlock
from media.transport.webrtc_transport import WebRtcTransport, patient_consent
from media.egress.outbound import OutboundStream
from media.renditions.adaptation import BAD_LOSS, Adaptation
from media.core.router import Router
from media.core.session import Session, SubscriberIdentity
from media.egress.sender_report import ReportJob, SenderReportWriter
from media.egress.sender_report import schedule as report_schedule

log = logging.getLogger(__name__)

# Sender-report intervals, as libwebrtc's defaults: lip sync needs one report per kind early on,
# after that audio's clock mapping hardly drifts. aiortc sends both every ~1 s, which at hundreds
# of points was a visible share of a worker's Python time.
FIRST_REPORT = 1.0
REPORT_INTERVAL = {"audio": 5.0, "video": 1.0}
JUDGED_INTERVAL = 0.9  # seconds: the shortest interval whose loss adaptation hears (points report about every second)


class ParkedTrack(MediaStreamTrack):
    """Placeholder track: it makes the answer ``sendonly`` but never yields media itself."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    async def recv(self):  # type: ignore[no-untyped-def]
        await asyncio.Event().wait()


def _pt_map(codecs: list) -> dict[str, int]:
    pts: dict[str, int] = {}
    for codec in codecs:
        if not is_rtx(codec):
            pts.setdefault(codec_key(codec), codec.payloadType)
    return pts


def _rtx_map(codecs: list) -> dict[int, int]:
    """Negotiated payload type -> the RTX payload type that repairs it (``apt``, RFC 4588)."""
    rtx: dict[int, int] = {}
    for codec in codecs:
        if is_rtx(codec):
            try:
                rtx.setdefault(int(codec.parameters.get("apt", -1)), codec.payloadType)
            except (TypeError, ValueError):
                continue
    return rtx


# The hall's own playback (the speaker's page) hears the return track: a point's voice in a
# dialogue, never the hall's own (media.floor.stage).
HALL_ROLE = "speaker"
# What a point's video receives: the program as published, its low rendition, or nothing (audio only).
RENDITION_TRACKS = {"full": "video", "low": "low", "audio": ""}
PAD_TICK = 0.02  # seconds between bursts of probe padding
PAD_LIMIT = 6.0  # seconds probe padding lasts at most without being renewed
PAD_NACKS = 5  # NACKs during probe padding that, at BAD_LOSS of the packets sent, end it


def _nacks(stream: OutboundStream) -> int:
    return stream.retransmits + stream.nacks_refused

RenditionListener = Callable[[Any, str, str], None]  # (consumer, rendition, reason: "pin" | "adapt")


class Consumer(Session, SubscriberIdentity):
    def __init__(
        self, router: Router, pc: RTCPeerConnection, role: str = "point", name: str = "", adapt: bool = True
    ) -> None:
        Session.__init__(self, router, pc)
        SubscriberIdentity.__init__(self, role, name)
        self.streams: dict[str, OutboundStream] = {}
        self._senders: dict[str, RTCRtpSender] = {}
        self._report_jobs: dict[str, ReportJob] = {}  # per kind: its sender reports (media.egress.sender_report)
        self._report_targets: dict[int, tuple] = {}  # our SSRC -> (sender, stream, quality): receiver reports
        self.transports: list[WebRtcTransport] = []  # the point's (one when bundled), once connected
        self.on_connected: list[Callable[[], None]] = []  # DTLS is up and media flows (once)
        self.answered_at: float | None = None
        self.connected_at: float | None = None
        self.last_rtcp = time.time()
        self._packets_at_rtcp = 0
        self._media_since: float | None = None  # first media sent since the last RTCP
        # Link quality from the subscriber's receiver reports, per kind.
        self.quality: dict[str, dict] = {}
        self.pinned: str | None = None  # the rendition an operator pinned (None: adaptation decides)
        self.adapted = "full"  # the rendition adaptation chose
        self.on_rendition: list[RenditionListener] = []
        self.adaptation = Adaptation(self.adapt, pad=self.pad) if adapt else None  # None: stays where it is pinned
        # probe padding: (bit/s, its track, until, the video's NACKs and packets when it started)
        self._padding: tuple[float, str, float, int, int] | None = None
        # per kind, at the start of the interval adaptation judges next: (time, highest sequence number
        # received, cumulative lost, octets we had sent, retransmissions we had sent)
        self._judged: dict[str, tuple[float, int, int, int, int]] = {}

    async def answer(self, offer_sdp: str) -> str:
        pc = self.pc
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        for transceiver in pc.getTransceivers():
            kind = transceiver.kind
            if kind in self.streams:
                transceiver.direction = "inactive"
                continue
            codecs = prefer_codecs(aiortc_compat.codecs(transceiver), kind, only_best=False)
            aiortc_compat.set_codecs(transceiver, codecs)
            if not codecs:
                continue
            sender = pc.addTrack(ParkedTrack(kind))
            rtx = _rtx_map(codecs)  # aiortc's answer then names the sender's RTX SSRC (FID group)
            ssrc, rtx_ssrc = aiortc_compat.sender_ssrcs(sender)
            track = "return" if kind == "audio" and self.role == HALL_ROLE else kind
            stream = OutboundStream(
                kind, ssrc, _pt_map(codecs), codecs[0].clockRate, rtx, rtx_ssrc if rtx else 0, track
            )
            self._park(sender, stream)
            self.streams[kind] = stream
            self._senders[kind] = sender
        patient_consent(pc)  # a loop busy with a join storm must not drop healthy points
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        self.answered_at = time.time()
        return pc.localDescription.sdp

    def _park(self, sender: RTCRtpSender, stream: OutboundStream) -> None:
        """Replace the sender's RTP loop, RTCP loop, NACK and PLI handling with relay versions."""
        router = self.router
        job = ReportJob(stream, sender, FIRST_REPORT, REPORT_INTERVAL.get(stream.kind, FIRST_REPORT))
        self._report_jobs[stream.kind] = job  # reports once the point is connected (writer set in _connected)

        async def retransmit(seq: int) -> None:
            stream.retransmit(seq)

        original_rtcp = aiortc_compat.rtcp_handler(sender)
        ssrc = stream.ssrc
        self._report_targets[ssrc] = (sender, stream, self.quality.setdefault(stream.kind, {}))

        async def handle_rtcp(packet) -> None:  # type: ignore[no-untyped-def]
            self._heard()
            if isinstance(packet, RtcpRrPacket):
                # Handled here in full: aiortc's handler would only add the RTT and build a stats
                # object nobody reads, on every point's report every second.
                for r in packet.reports:
                    if r.ssrc == ssrc:
                        self._report((r.ssrc, r.fraction_lost, r.packets_lost, r.highest_sequence,
                                      r.jitter, r.lsr, r.dlsr))
                return
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP and stream.kind == "video":
                try:
                    bitrate, _ = unpack_remb_fci(packet.fci)
                except ValueError:
                    return  # another application's feedback
                self.quality.setdefault("video", {})["remb_bps"] = bitrate
                if self.adaptation is not None:
                    self.adaptation.estimate(bitrate)
                return
            await original_rtcp(packet)

        def send_keyframe() -> None:
            router.request_keyframe(stream)

        # Sender reports come from the process's one schedule (media.egress.sender_report).
        aiortc_compat.park_sender(sender, retransmit=retransmit, handle_rtcp=handle_rtcp, send_keyframe=send_keyframe,
                                  reports_start=lambda: report_schedule().add(job),
                                  reports_stop=lambda: report_schedule().remove(job))

    def _heard(self) -> None:
        """RTCP arrived: the point is alive (see ``is_silent``)."""
        self.last_rtcp = time.time()
        self._packets_at_rtcp = sum(s.packets for s in self.streams.values())
        self._media_since = None

    def _report(self, block: ReportBlock) -> None:
        """One receiver report block about one of our streams: the link quality figures."""
        target = self._report_targets.get(block[0])
        if target is None:
            return
        sender, stream, quality = target
        quality["fraction_lost"] = block[1] / 256
        quality["packets_lost"] = block[2]
        quality["jitter_ms"] = block[4] * 1000 / stream.clock_rate
        rtt = aiortc_compat.round_trip(sender, block[5], block[6])
        if rtt is not None:
            quality["rtt_ms"] = rtt * 1000
            stream.rtt = rtt
        if stream.packets and self.adaptation is not None:  # (a report before any media says nothing)
            self._judge(stream, block, quality)

    def _judge(self, stream: OutboundStream, block: ReportBlock, quality: dict) -> None:
        """Adaptation hears the loss and the rate over at least ``JUDGED_INTERVAL``, from the report's
        cumulative counters: a point reports with every NACK too, and a block's own fraction over
        the few packets since the one before read 20 % on a link that lost 5 %."""
        now, kind = time.monotonic(), stream.kind
        last = self._judged.get(kind)
        if last is not None and now - last[0] < JUDGED_INTERVAL:
            return
        self._judged[kind] = (now, block[3], block[2], stream.octets, stream.retransmits)
        expected = block[3] - last[1] if last is not None else 0
        if last is None or not 0 < expected < 0x8000:
            return  # the first report, or the counters started again: a new interval from here
        lost = min(max(block[2] - last[2], 0), expected)
        seconds = now - last[0]
        sent_bps = (stream.octets - last[3]) * 8 / seconds
        # what the link carried to the point: the media it received, and our repairs, lost as often
        # (on a congested link they take a share of it that a lower rendition would not need)
        carried = expected - lost + (stream.retransmits - last[4]) * (1 - lost / expected)
        delivered_bps = carried * (stream.octets / stream.packets) * 8 / seconds
        self.adaptation.report(kind, lost / expected, quality["jitter_ms"], quality.get("rtt_ms"), sent_bps,  # type: ignore[union-attr]
                               delivered_bps)

    def _report_block(self, block: ReportBlock) -> None:
        """The transport's short path for plain receiver reports (media.transport.receiver_reports)."""
        self._heard()
        self._report(block)

    def _connected(self) -> None:
        if self.connected_at is not None or self._closed.is_set():
            return
        masters: dict[int, tuple[bytes, bytes] | None] = {}  # per transport (audio and video share one)
        paths: dict[str, WebRtcTransport] = {}
        for kind, sender in self._senders.items():
            transport = WebRtcTransport.take(sender.transport)
            if transport is None:
                log.warning("consumer %s connected without a nominated pair", self.id)
                return
            if transport not in self.transports:
                self.transports.append(transport)
                transport.on_report = self._report_block
                masters[id(transport)] = transport.tx_master() if fanout.enabled() else None
            stream = self.streams[kind]
            master = masters[id(transport)]
            gcm = srtp_gcm.new(*master) if master is not None else None  # one context per stream (SSRC)
            stream.bind(transport.tx_srtp, transport.sendto, transport.remote_addr, transport.fd, gcm)
            paths[kind] = transport
            if transport.pin():  # the kernel keeps the route
                stream.path_pinned()
            self._report_jobs[kind].writer = SenderReportWriter(
                transport.tx_srtp, transport.sendto, transport.remote_addr, stream.ssrc, aiortc_compat.sender_cname(sender)
            )
            stream.on_failure = lambda: asyncio.ensure_future(self.close())
        if len(paths) == 2 and paths["audio"] is paths["video"]:  # bundled: one path (a shared socket has many)
            self.streams["video"].pair_with(self.streams["audio"])
        self.connected_at = time.time()
        for stream in self.streams.values():
            if stream.track:  # (not a video stream on audio only)
                self.router.add_outbound(stream)
        for cb in self.on_connected:
            try:
                cb()
            except Exception:
                log.exception("consumer connected callback failed")

    @property
    def rendition(self) -> str:
        """What the point's video receives now: "full", "low" or "audio" (none)."""
        video = self.streams.get("video")
        if video is None or self.role == HALL_ROLE:
            return "full"
        return next(r for r, track in RENDITION_TRACKS.items() if track == video.track)

    def set_rendition(self, pin: str | None) -> None:
        """Pin a rendition ("full", "low", "audio") or give the choice back to adaptation (None)."""
        if pin is not None and pin not in RENDITION_TRACKS:
            raise ValueError(f"unknown rendition {pin!r}")
        self.pinned = pin
        self._follow(pin or self.adapted, "pin")

    def page_report(self, frozen_share: float) -> None:
        """The point's page says how much of its last report's interval the picture was frozen
        (server.domain.quality): evidence for adaptation (media.renditions.adaptation.Adaptation.page)."""
        if self.adaptation is not None and self.role != HALL_ROLE:
            self.adaptation.page(frozen_share)

    def adapt(self, rendition: str) -> None:
        """Adaptation's choice (media.renditions.adaptation); a pin overrides it."""
        self.adapted = rendition
        if self.pinned is None:
            self._follow(rendition, "adapt")

    def _follow(self, rendition: str, reason: str) -> None:
        video = self.streams.get("video")
        if video is None or self.role == HALL_ROLE or rendition == self.rendition:
            return
        track = RENDITION_TRACKS[rendition]
        if self.connected_at is None:
            video.track = track  # joins that track when connected
        else:
            self.router.move_outbound(video, track or None)
        for cb in self.on_rendition:
            try:
                cb(self, rendition, reason)
            except Exception:
                log.exception("rendition callback failed")

    def pad(self, bps: float) -> bool:
        """Probe padding at ``bps`` on the video stream for adaptation (0 stops it); False where the
        point has no RTX or no video flowing. It stops by itself after ``PAD_LIMIT`` seconds (a
        point whose reports stopped) or when the stream's track changes (a pin)."""
        video = self.streams.get("video")
        if bps <= 0 or video is None or not video.track or video.rtx_pt < 0 or self._closed.is_set():
            self._padding = None
            return False
        started = self._padding is None
        self._padding = (bps, video.track, time.monotonic() + PAD_LIMIT, _nacks(video), video.packets)
        if started:
            self._pad_tick()
        return True

    def _pad_tick(self) -> None:
        padding, video = self._padding, self.streams["video"]
        if padding is None or self._closed.is_set() or video.track != padding[1] or time.monotonic() > padding[2]:
            self._padding = None
            return
        nacks, sent = _nacks(video) - padding[3], video.packets - padding[4]
        if nacks >= PAD_NACKS and nacks >= BAD_LOSS * sent and self.adaptation is not None:
            self.adaptation.padding_failed()  # the point is losing packets: before its next report says so
            return
        video.pad(int(padding[0] / 8 * PAD_TICK))
        asyncio.get_running_loop().call_later(PAD_TICK, self._pad_tick)

    def hear(self, track: str) -> None:
        """Take the audio from ``track``: "to_point" while this point holds the floor (it hears the
        hall, not itself), "audio" (the program) otherwise."""
        audio = self.streams.get("audio")
        if audio is None or self.role == HALL_ROLE or audio.track == track:
            return
        if self.connected_at is None:
            audio.track = track
        else:
            self.router.move_outbound(audio, track)

    def stats(self) -> dict:
        """Per kind: what was sent and the link quality; ``join``: when each step of joining happened."""
        video = self.streams.get("video")
        kinds = {
            kind: {
                "packets": s.packets,
                "sends": s.sends,
                "runs": s.runs,
                "octets": s.octets,
                "retransmits": s.retransmits,
                "probe_octets": s.probe_octets,  # adaptation's probe padding (over RTX)
                "rtx": s.rtx_pt >= 0,  # retransmissions over RTX (RFC 4588), else repeated byte for byte
                "nacks_refused": s.nacks_refused,
                "drops": s.drops,
                "keyframe_requests": s.keyframe_requests,
                "srtp": s.srtp,
                **self.quality.get(kind, {}),
            }
            for kind, s in self.streams.items()
        }
        join = {
            "created": self.created,
            "answered": self.answered_at,
            "connected": self.connected_at,
            "first_keyframe": video.first_sent_at if video is not None else None,
            "fast_start": video.fast_started if video is not None else False,
        }
        transports = [t.stats() for t in self.transports]
        rtcp = {"rtcp_datagrams": sum(t["srtcp"] for t in transports),
                "rtcp_short_reports": sum(t["short_reports"] for t in transports),
                "consent_answered": sum(t["consent_answered"] for t in transports)} if transports else {}
        checks = [t["consent_checks"] for t in transports if t["consent_checks"] is not None]
        consent = {"consent_checks": {k: sum(c[k] for c in checks) for k in ("sent", "answered", "lost")}} if checks else {}
        paired = video is not None and video.paired  # audio rides in video's sends
        pinned = bool(transports) and all(t["path_pinned"] for t in transports)
        adaptation = self.adaptation.stats() if self.adaptation is not None else None
        return {"join": join, "paired": paired, "path_pinned": pinned, "rendition": self.rendition,
                "pinned": self.pinned, "adaptation": adaptation, **rtcp, **consent, **kinds}

    def is_silent(self, now: float, timeout: float) -> bool:
        """A subscriber that receives media but sent no RTCP (receiver reports) for ``timeout`` vanished.

        Subscribers waiting for the speaker get no media and so send no reports; they stay (ICE consent
        checks, every 5 s, still end a session whose peer is gone).
        """
        if self.connected_at is None:
            return False
        sent = sum(s.packets for s in self.streams.values())
        if sent != self._packets_at_rtcp:
            if self._media_since is None:
                self._media_since = now
        quiet_since = max(self.last_rtcp, self.connected_at, self._media_since or now)
        return self._media_since is not None and now - quiet_since > timeout

    def _leave_router(self) -> None:
        for stream in self.streams.values():
            self.router.remove_outbound(stream)
