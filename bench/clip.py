"""A pre-encoded test clip (H.264 Annex-B + Opus), encoded once with PyAV and cached on disk.

Publishers in tests and benchmarks send these packets as they are: nothing is encoded while sending.
"""

from __future__ import annotations

import fractions
import math
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import av

CACHE = Path(__file__).resolve().parent / ".cache"


@dataclass
class Clip:
    width: int
    height: int
    fps: int
    duration: float
    video: list[tuple[int, bool, bytes]]  # (pts in 1/90000, keyframe, Annex-B access unit)
    audio: list[tuple[int, bytes]]  # (pts in 1/48000, Opus packet)

    @property
    def video_bitrate(self) -> float:
        return sum(len(p) for _, _, p in self.video) * 8 / self.duration


def _frame_planes(width: int, height: int, index: int, luma: int | None = None) -> tuple[bytes, bytes, bytes]:
    """A moving gradient with a moving noise block: cheap to make, not trivial to encode. With
    ``luma``, a flat background of that brightness instead of the gradient (a second publisher's
    picture a test can tell from the first by its mean brightness)."""
    shift = (index * 6) % width
    if luma is None:
        row = bytes(((x + shift) * 255 // width) & 0xFF for x in range(width))
    else:
        row = bytes([luma]) * width
    y = bytearray(row * height)
    bw, bh = width // 6, height // 6
    bx = (index * 11) % (width - bw)
    by = (index * 7) % (height - bh)
    noise = os.urandom(bw * bh)
    for r in range(bh):
        start = (by + r) * width + bx
        y[start : start + bw] = noise[r * bw : (r + 1) * bw]
    cw, ch = width // 2, height // 2
    u = bytes([(index * 3) & 0xFF]) * (cw * ch)
    v = bytes([(255 - index * 3) & 0xFF]) * (cw * ch)
    return bytes(y), u, v


def _encode_video(
    width: int, height: int, fps: int, seconds: float, keyint: int, kbps: int, luma: int | None = None
) -> list:
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height = width, height
    codec.pix_fmt = "yuv420p"
    codec.time_base = fractions.Fraction(1, fps)
    codec.framerate = fractions.Fraction(fps, 1)
    codec.bit_rate = kbps * 1000
    codec.options = {
        "preset": "veryfast",
        "tune": "zerolatency",
        "profile": "baseline",
        # threads=2: the zerolatency tune cuts a frame into one slice per thread, and x264 would take
        # the count from the machine's cores; pinned, the clip (packets and GSO runs per frame: a
        # 6-byte HRD SEI and two slices) is the same on every machine the benchmark runs on.
        "x264-params": (
            f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes=0:repeat-headers=1:"
            f"vbv-maxrate={kbps}:vbv-bufsize={kbps // 2}:nal-hrd=cbr:force-cfr=1:threads=2"
        ),
    }
    out = encode_frames(codec, width, height, int(seconds * fps), luma)
    return [(int(p.pts * 90000 // fps), bool(p.is_keyframe), bytes(p)) for p in out]


def encode_frames(codec: av.CodecContext, width: int, height: int, count: int, luma: int | None = None) -> list:
    """``count`` frames of the moving test picture through ``codec``, flushed: its packets."""
    out = []
    for i in range(count):
        frame = av.VideoFrame(width, height, "yuv420p")
        for plane, data in zip(frame.planes, _frame_planes(width, height, i, luma)):
            plane.update(data)
        frame.pts = i
        frame.time_base = codec.time_base
        out += codec.encode(frame)
    out += codec.encode(None)
    return out


def encode_audio(seconds: float, tone: int = 440) -> list:
    """Opus packets of a ``tone`` Hz sine (a test tells two publishers' voices apart by it)."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = 48000
    codec.layout = "stereo"
    codec.format = "s16"
    codec.bit_rate = 64000
    codec.time_base = fractions.Fraction(1, 48000)
    samples = 960
    out = []
    for i in range(int(seconds * 50)):
        pcm = bytearray()
        for n in range(samples):
            t = (i * samples + n) / 48000
            s = int(8000 * math.sin(2 * math.pi * tone * t))
            pcm += struct.pack("<hh", s, s)
        frame = av.AudioFrame(format="s16", layout="stereo", samples=samples)
        frame.planes[0].update(bytes(pcm))
        frame.sample_rate = 48000
        frame.pts = i * samples
        frame.time_base = codec.time_base
        out += codec.encode(frame)
    out += codec.encode(None)
    return [(int(p.pts), bytes(p)) for p in out if p.pts is not None]


def test_clip(
    seconds: float = 10.0,
    width: int = 1280,
    height: int = 720,
    fps: int = 30,
    keyframe_seconds: float = 1.0,
    kbps: int = 2000,
    tone: int = 440,
    luma: int | None = None,
) -> Clip:
    """Return the clip, encoding it once per parameter set (a few seconds) and caching it. ``tone``
    (Hz) and ``luma`` (a flat background, see ``_frame_planes``) make a second publisher's clip."""
    CACHE.mkdir(parents=True, exist_ok=True)
    name = f"clip_{width}x{height}_{fps}_{seconds:g}s_k{keyframe_seconds:g}_{kbps}k.pickle"
    if tone != 440 or luma is not None:
        name = name.replace(".pickle", f"_t{tone}_l{luma}.pickle")
    path = CACHE / name
    if path.exists():
        return pickle.loads(path.read_bytes())
    video = _encode_video(width, height, fps, seconds, int(keyframe_seconds * fps), kbps, luma)
    audio = encode_audio(seconds, tone)
    clip = Clip(width, height, fps, seconds, video, audio)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(clip))
    tmp.replace(path)
    return clip


test_clip.__test__ = False  # type: ignore[attr-defined]  # a factory, not a pytest test
