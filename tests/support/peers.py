"""Real aiortc WHEP subscribers for tests (the WHIP publisher is ``bench.whip_publisher``)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from bench.whip_publisher import NO_ICE, negotiate
from media.core.source import NTP_EPOCH_OFFSET
from tests.support.waiting import wait_until_async


async def delete_session(location: str, token: str) -> int:
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.delete(location, headers={"Authorization": f"Bearer {token}"})
    return r.status_code


@dataclass
class Subscriber:
    """A WHEP subscriber that decodes video with aiortc and records what it saw."""

    pc: RTCPeerConnection
    location: str = ""
    frames: int = 0
    audio_frames: int = 0
    sizes: set = field(default_factory=set)
    first_frame_at: float | None = None
    frame_times: list = field(default_factory=list)
    tasks: list = field(default_factory=list)

    def fps(self, window: float = 3.0) -> float:
        now = time.monotonic()
        recent = [t for t in self.frame_times if t >= now - window]
        return len(recent) / window

    async def wait_frames(self, count: int, timeout: float) -> bool:
        """Whether ``count`` video frames were decoded within ``timeout`` s (callers assert or compare)."""
        try:
            await wait_until_async(lambda: self.frames, timeout, f"{count} frames",
                                   check=lambda frames: frames >= count, interval=0.05)
        except AssertionError:
            return False
        return True

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await self.pc.close()


async def _consume(sub: Subscriber, track: MediaStreamTrack) -> None:
    try:
        while True:
            frame = await track.recv()
            if track.kind == "video":
                sub.frames += 1
                now = time.monotonic()
                sub.frame_times.append(now)
                del sub.frame_times[:-300]
                sub.sizes.add((frame.width, frame.height))
                if sub.first_frame_at is None:
                    sub.first_frame_at = now
            else:
                sub.audio_frames += 1
    except (MediaStreamError, asyncio.CancelledError):
        pass


async def subscribe(base_url: str, conference_id: str, token: str, drop_every: int = 0,
                    config: RTCConfiguration = NO_ICE) -> Subscriber:
    """WHEP-subscribe; ``drop_every=N`` discards every Nth first-time video packet (forces NACKs);
    ``config`` replaces the no-STUN configuration (e.g. a TURN server and relay-only)."""
    pc = RTCPeerConnection(config)
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    sub = Subscriber(pc)

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        sub.tasks.append(asyncio.ensure_future(_consume(sub, track)))

    if drop_every:
        install_dropper(pc, drop_every, sub)
    sub.location = await negotiate(pc, f"{base_url}/whep/{conference_id}", token)
    return sub


def install_dropper(pc: RTCPeerConnection, every: int, sub: Subscriber) -> None:
    """Drop every Nth *new* video RTP packet as it arrives from the network (before SRTP), as a lossy
    link would; record which dropped packets come back as retransmissions."""
    sub.dropped = set()  # type: ignore[attr-defined]
    sub.repaired = set()  # type: ignore[attr-defined]
    sub.video_pts = set()  # type: ignore[attr-defined]
    seen: set[tuple[int, int]] = set()
    state = {"n": 0}
    video = next(t for t in pc.getTransceivers() if t.kind == "video")
    ice = video.receiver.transport.transport
    original_recv = ice._recv

    async def recv() -> bytes:
        while True:
            data = await original_recv()
            if len(data) >= 12 and 128 <= data[0] <= 191 and (data[1] & 0x7F) in sub.video_pts:  # type: ignore[attr-defined]
                key = (int.from_bytes(data[8:12], "big"), int.from_bytes(data[2:4], "big"))
                if key not in seen:
                    seen.add(key)
                    state["n"] += 1
                    if state["n"] % every == 0:
                        sub.dropped.add(key)  # type: ignore[attr-defined]
                        continue
                elif key in sub.dropped:  # type: ignore[attr-defined]
                    sub.repaired.add(key)  # type: ignore[attr-defined]
            return data

    ice._recv = recv
    receiver = video.receiver
    original_handle = receiver._handle_rtp_packet
    rtx_pts: set[int] = set()

    async def handle_rtp(packet, arrival_time_ms):  # type: ignore[no-untyped-def]
        """A retransmission over RTX (RFC 4588) has its own SSRC and numbers: after SRTP, its first two
        payload bytes name the packet it repairs."""
        if packet.payload_type in rtx_pts and len(packet.payload) >= 2:
            osn = int.from_bytes(packet.payload[:2], "big")
            for key in [k for k in sub.dropped if k[1] == osn]:  # type: ignore[attr-defined]
                sub.repaired.add(key)  # type: ignore[attr-defined]
        return await original_handle(packet, arrival_time_ms)

    receiver._handle_rtp_packet = handle_rtp  # type: ignore[method-assign]
    original_srd = pc.setRemoteDescription

    async def set_remote(desc):  # type: ignore[no-untyped-def]
        await original_srd(desc)
        sub.video_pts.update(  # type: ignore[attr-defined]
            c.payloadType for c in video._codecs if not c.mimeType.lower().endswith("rtx")
        )
        rtx_pts.update(c.payloadType for c in video._codecs if c.mimeType.lower().endswith("rtx"))

    pc.setRemoteDescription = set_remote  # type: ignore[method-assign]


def install_sync_probe(sub: Subscriber) -> None:
    """Record sender reports and packet arrivals per kind, to check A/V sync as a player would."""
    from aiortc.rtp import RtcpSrPacket

    sub.sr = {}  # type: ignore[attr-defined]
    sub.arrivals = {"audio": [], "video": []}  # type: ignore[attr-defined]
    for transceiver in sub.pc.getTransceivers():
        receiver = transceiver.receiver
        kind = transceiver.kind
        orig_rtp = receiver._handle_rtp_packet
        orig_rtcp = receiver._handle_rtcp_packet

        async def rtp(packet, arrival_time_ms, kind=kind, orig=orig_rtp):  # type: ignore[no-untyped-def]
            log = sub.arrivals[kind]  # type: ignore[attr-defined]
            if len(log) < 5000:
                log.append((packet.timestamp, time.time()))
            await orig(packet, arrival_time_ms)

        async def rtcp(packet, kind=kind, orig=orig_rtcp):  # type: ignore[no-untyped-def]
            if isinstance(packet, RtcpSrPacket):
                sub.sr[kind] = (packet.sender_info.ntp_timestamp, packet.sender_info.rtp_timestamp)  # type: ignore[attr-defined]
            await orig(packet)

        receiver._handle_rtp_packet = rtp
        receiver._handle_rtcp_packet = rtcp


def sync_offset(sub: Subscriber) -> float:
    """Seconds by which video leads audio when both are placed on the sender's clock via their SRs."""
    import statistics

    clocks = {"audio": 48000, "video": 90000}
    lateness = {}
    for kind, (ntp, rtp_sr) in sub.sr.items():  # type: ignore[attr-defined]
        wall_sr = ntp / (1 << 32) - NTP_EPOCH_OFFSET
        values = []
        for rtp_ts, arrival in sub.arrivals[kind][-400:]:  # type: ignore[attr-defined]
            delta = ((rtp_ts - rtp_sr + (1 << 31)) % (1 << 32)) - (1 << 31)
            values.append(arrival - (wall_sr + delta / clocks[kind]))
        lateness[kind] = statistics.median(values)
    return lateness["audio"] - lateness["video"]
