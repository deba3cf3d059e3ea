"""A WHIP publisher of the pre-encoded clip (real aiortc, nothing encoded while sending), and the
offer/answer exchange WHIP and WHEP share. Used by the benchmarks and by the tests."""

from __future__ import annotations

import asyncio
import fractions
import time
from dataclasses import dataclass

import av
import httpx
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpsender import RTCRtpSender

from bench.clip import Clip
from media.transport.ice import restrict_host_addresses
from media.transport.webrtc_transport import patient_consent

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


def prefer_codec(pc: RTCPeerConnection, kind: str, mime: str) -> None:
    """Offer ``mime`` (and RTX) only, for the transceivers of ``kind``."""
    caps = RTCRtpSender.getCapabilities(kind)
    prefs = [c for c in caps.codecs if c.mimeType.lower() == mime.lower()]
    prefs += [c for c in caps.codecs if c.mimeType.lower() == f"{kind}/rtx"]
    for t in pc.getTransceivers():
        if t.kind == kind:
            t.setCodecPreferences(prefs)


async def negotiate(pc: RTCPeerConnection, url: str, token: str, munge=None) -> str:  # type: ignore[no-untyped-def]
    """POST the offer (edited by ``munge``), apply the answer; the session's absolute URL."""
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


@dataclass
class Publisher:
    pc: RTCPeerConnection
    video: ClipTrack
    audio: ClipTrack
    location: str = ""

    async def close(self) -> None:
        await self.pc.close()


def clip_peer(clip: Clip) -> Publisher:
    """An aiortc peer that sends the clip (H.264 + Opus, pre-encoded), not yet negotiated."""
    pc = RTCPeerConnection(NO_ICE)
    video, audio = ClipTrack("video", clip), ClipTrack("audio", clip)
    vsender = pc.addTransceiver(video, direction="sendonly").sender
    pc.addTransceiver(audio, direction="sendonly")
    prefer_codec(pc, "video", "video/H264")
    prefer_codec(pc, "audio", "audio/opus")
    vsender._send_keyframe = video.request_keyframe  # honour PLI/FIR on the pre-encoded path
    patient_consent(pc)  # consent lost after ~30 s of silence, as in browsers and OBS (RFC 7675)
    return Publisher(pc, video, audio)


async def publish(base_url: str, conference_id: str, token: str, clip: Clip, munge=None) -> Publisher:  # type: ignore[no-untyped-def]
    """WHIP-publish the clip from an aiortc peer; ``munge`` edits the offer."""
    publisher = clip_peer(clip)
    publisher.location = await negotiate(publisher.pc, f"{base_url}/whip/{conference_id}", token, munge)
    return publisher
