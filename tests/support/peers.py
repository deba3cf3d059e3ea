"""Real aiortc peers for tests and benchmarks: a WHIP publisher of pre-encoded packets, WHEP subscribers."""

from __future__ import annotations

import asyncio
import fractions
import time
from dataclasses import dataclass, field

import av
import httpx
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.mediastreams import MediaStreamError

from media.transport.ice import patient_consent, restrict_host_addresses
from tests.support.clip import Clip

restrict_host_addresses(["127.0.0.1"])
NO_ICE = RTCConfiguration(iceServers=[])


class ClipTrack(MediaStreamTrack):
    """Yields the clip's encoded packets (``av.Packet``) in real time, looping with increasing pts.

    A keyframe request (PLI/FIR from the server) skips ahead to the clip's next keyframe, the way an
    encoder would answer with an IDR.
    """

    def __init__(self, kind: str, clip: Clip) -> None:
        super().__init__()
        self.kind = kind
        self.clip = clip
        if kind == "video":
            self.items = [(pts, key, data) for pts, key, data in clip.video]
            self.time_base = fractions.Fraction(1, 90000)
        else:
            self.items = [(pts, True, data) for pts, data in clip.audio]
            self.time_base = fractions.Fraction(1, 48000)
        self.step = 90000 // clip.fps if kind == "video" else 960
        self.index = 0
        self.out_pts = 0
        self.start: float | None = None
        self.keyframe_requested = False
        self.keyframe_requests = 0
        self.sent = 0

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1
        self.keyframe_requested = True

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        if self.start is None:
            self.start = time.monotonic()
        if self.keyframe_requested and self.kind == "video":
            self.keyframe_requested = False
            n = len(self.items)
            for step in range(n):
                j = (self.index + step) % n
                if self.items[j][1]:
                    self.index = j
                    break
        if self.index >= len(self.items):
            self.index = 0
        _, key, data = self.items[self.index]
        self.index += 1
        pts = self.out_pts
        self.out_pts += self.step
        due = self.start + float(pts * self.time_base)
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = self.time_base
        self.sent += 1
        return packet


def _prefer(pc: RTCPeerConnection, kind: str, mime: str) -> None:
    from aiortc.rtcrtpsender import RTCRtpSender as S

    caps = S.getCapabilities(kind)
    prefs = [c for c in caps.codecs if c.mimeType.lower() == mime.lower()]
    prefs += [c for c in caps.codecs if c.mimeType.lower() == f"{kind}/rtx"]
    for t in pc.getTransceivers():
        if t.kind == kind:
            t.setCodecPreferences(prefs)


async def _negotiate(pc: RTCPeerConnection, url: str, token: str, munge=None) -> str:  # type: ignore[no-untyped-def]
    offer = await pc.createOffer()
    await pc.setLocalDescription(offer)
    sdp = pc.localDescription.sdp
    if munge is not None:
        sdp = munge(sdp)
    async with httpx.AsyncClient(timeout=20) as client:
        r = await client.post(
            url,
            content=sdp,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/sdp"},
        )
    if r.status_code != 201:
        raise RuntimeError(f"{url}: {r.status_code} {r.text}")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
    location = r.headers["location"]
    return location if location.startswith("http") else str(httpx.URL(url).join(location))


async def delete_session(location: str, token: str) -> int:
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.delete(location, headers={"Authorization": f"Bearer {token}"})
    return r.status_code


@dataclass
class Publisher:
    pc: RTCPeerConnection
    video: ClipTrack
    audio: ClipTrack
    location: str = ""

    async def close(self) -> None:
        await self.pc.close()


async def publish(base_url: str, conference_id: str, token: str, clip: Clip, munge=None) -> Publisher:  # type: ignore[no-untyped-def]
    """WHIP-publish the clip from an aiortc peer (H.264 + Opus, pre-encoded); ``munge`` edits the offer."""
    pc = RTCPeerConnection(NO_ICE)
    video, audio = ClipTrack("video", clip), ClipTrack("audio", clip)
    vsender = pc.addTransceiver(video, direction="sendonly").sender
    pc.addTransceiver(audio, direction="sendonly")
    _prefer(pc, "video", "video/H264")
    _prefer(pc, "audio", "audio/opus")
    vsender._send_keyframe = video.request_keyframe  # honour PLI/FIR on the pre-encoded path
    patient_consent(pc)  # consent lost after ~30 s of silence, as in browsers and OBS (RFC 7675)
    location = await _negotiate(pc, f"{base_url}/whip/{conference_id}", token, munge)
    return Publisher(pc, video, audio, location)


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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.frames >= count:
                return True
            await asyncio.sleep(0.05)
        return self.frames >= count

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
    sub.location = await _negotiate(pc, f"{base_url}/whep/{conference_id}", token)
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
        wall_sr = ntp / (1 << 32) - 2208988800
        values = []
        for rtp_ts, arrival in sub.arrivals[kind][-400:]:  # type: ignore[attr-defined]
            delta = ((rtp_ts - rtp_sr + (1 << 31)) % (1 << 32)) - (1 << 31)
            values.append(arrival - (wall_sr + delta / clocks[kind]))
        lateness[kind] = statistics.median(values)
    return lateness["audio"] - lateness["video"]
