"""A clip with B-frames (x264 Main profile, ``bframes=2``, as OBS can send) and a WHIP publisher that
sends its packets unchanged: in decode order, each with its own presentation time as RTP timestamp.

The ordinary test clip (``bench.clip``) has no B-frames, so its pts only grow; here the RTP
timestamps go back and forth, which is what a recorder has to turn into decode timestamps.
"""

from __future__ import annotations

import fractions
import pickle
from dataclasses import dataclass

import av
from aiortc import RTCPeerConnection

from media.transport.webrtc_transport import patient_consent
from bench.clip import CACHE, Clip, encode_audio, encode_frames
from bench.whip_publisher import NO_ICE, ClipTrack, Publisher, negotiate, prefer_codec


@dataclass
class ReorderedClip(Clip):
    """``video`` holds (pts, keyframe, data) in decode order; ``video_dts`` the encoder's dts."""

    video_dts: list[int]


def _encode_video(width: int, height: int, fps: int, seconds: float, keyint: int) -> list[tuple[int, int, bool, bytes]]:
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height = width, height
    codec.pix_fmt = "yuv420p"
    codec.time_base = fractions.Fraction(1, fps)
    codec.framerate = fractions.Fraction(fps, 1)
    codec.bit_rate = 800_000
    codec.options = {
        "preset": "veryfast",
        "profile": "main",
        # The equivalent of ``ffmpeg -c:v libx264 -profile:v main -bf 2``: B-pyramid (x264's default
        # with two B-frames) makes the reorder depth 2. Closed GOPs of ``keyint`` frames.
        "x264-params": f"bframes=2:keyint={keyint}:min-keyint={keyint}:scenecut=0:repeat-headers=1:threads=2",
    }
    out = encode_frames(codec, width, height, int(seconds * fps))
    step = 90000 // fps
    return [(int(p.pts) * step, int(p.dts) * step, bool(p.is_keyframe), bytes(p)) for p in out]


def bframe_clip(seconds: float = 6.0, width: int = 640, height: int = 360, fps: int = 30) -> ReorderedClip:
    """The clip (encoded once, cached like the ordinary one); keyframes every second."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"bclip_{width}x{height}_{fps}_{seconds:g}s.pickle"
    if path.exists():
        return pickle.loads(path.read_bytes())
    video = _encode_video(width, height, fps, seconds, fps)
    clip = ReorderedClip(
        width,
        height,
        fps,
        seconds,
        [(pts, key, data) for pts, _dts, key, data in video],
        encode_audio(seconds),
        [dts for _pts, dts, _key, _data in video],
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(clip))
    tmp.replace(path)
    return clip


class ReorderedClipTrack(ClipTrack):
    """Sends the clip in decode order, paced by decode time, each packet with the clip's own
    composition offset (pts - dts) on top of a decode clock that only grows (across loops too)."""

    def __init__(self, clip: ReorderedClip) -> None:
        super().__init__("video", clip)
        self.offsets = [pts - dts for (pts, _key, _data), dts in zip(clip.video, clip.video_dts)]
        self.shown_until = -1  # the latest pts sent

    async def recv(self) -> av.Packet:
        n = len(self.items)
        index = self.index % n
        if self.keyframe_requested:  # an encoder answers with an IDR: the next one in the clip
            self.keyframe_requested = False
            index = next((j % n for j in range(index, index + n) if self.items[j % n][1]), index)
            # ... shown after every picture sent before it, as a camera's next frame would be
            while self.out_pts + self.offsets[index] <= self.shown_until:
                self.out_pts += self.step
        self.index = index
        packet = await super().recv()  # paces by the decode clock, pts = that clock
        packet.pts = int(packet.pts) + self.offsets[index]
        self.shown_until = max(self.shown_until, int(packet.pts))
        return packet


async def publish_reordered(base_url: str, conference_id: str, token: str, clip: ReorderedClip) -> Publisher:
    """WHIP-publish the B-frame clip (H.264 + Opus) from an aiortc peer, packets unchanged."""
    pc = RTCPeerConnection(NO_ICE)
    video, audio = ReorderedClipTrack(clip), ClipTrack("audio", clip)
    vsender = pc.addTransceiver(video, direction="sendonly").sender
    pc.addTransceiver(audio, direction="sendonly")
    prefer_codec(pc, "video", "video/H264")
    prefer_codec(pc, "audio", "audio/opus")
    vsender._send_keyframe = video.request_keyframe
    patient_consent(pc)
    location = await negotiate(pc, f"{base_url}/whip/{conference_id}", token)
    return Publisher(pc, video, audio, location)


