"""What a subscriber (or a recording) saw and heard: which publisher's picture (by mean brightness:
the floor tests' point clip has a dark flat background, the speaker's a mid-grey gradient) and which
test tones (by FFT: the speaker's clip sings 440 Hz, the point's 1000 Hz)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, rtcrtpreceiver
from aiortc.mediastreams import MediaStreamError

# aiortc's own decoder thread, kept at import (test collection, before any engine runs): a media
# engine replaces it for the whole process (media.ingest.frame_tap: the relay decodes nothing), so
# a test that runs an engine and decoding subscriber peers in one process gives it back to the
# peers with ``decoding_peers`` (the engine's producers drop their frames before any thread sees them).
AIORTC_DECODER = rtcrtpreceiver.decoder_worker
assert AIORTC_DECODER.__module__ == "aiortc.rtcrtpreceiver", "imported after an engine was made"


def decoding_peers() -> None:
    rtcrtpreceiver.decoder_worker = AIORTC_DECODER

HALL_TONE = 440
POINT_TONE = 1000
POINT_LUMA = 30  # the point clip's background (bench.clip.test_clip(luma=...))
DARK = 80  # mean luma below this: the point's picture; above: the speaker's (~127)


def mean_luma(frame: av.VideoFrame) -> float:
    plane = frame.to_ndarray(format="gray")
    return float(plane.mean())


def tone_levels(samples: np.ndarray, rate: int = 48000, tones: tuple[int, ...] = (HALL_TONE, POINT_TONE)) -> dict[int, float]:
    """Each tone's spectral peak over the spectrum's median (a pure tone: thousands; absent: ~1)."""
    if len(samples) < rate // 4:
        return {tone: 0.0 for tone in tones}
    window = np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * window))
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    floor = float(np.median(spectrum)) or 1e-9
    levels = {}
    for tone in tones:
        band = (freqs > tone - 15) & (freqs < tone + 15)
        levels[tone] = float(spectrum[band].max()) / floor
    return levels


def heard(levels: dict[int, float], tone: int, ratio: float = 1000.0) -> bool:
    """A tone present is ~10^6 over the median; absent, under ~100 (Opus noise, leakage)."""
    return levels.get(tone, 0.0) > ratio


@dataclass
class ProgramWatcher:
    """A WHEP peer's decoded program: (monotonic time, mean luma) per frame, and the last second of audio."""

    pc: RTCPeerConnection
    consumer_id: str = ""  # its session on the server or engine
    lumas: list[tuple[float, float]] = field(default_factory=list)
    sizes: list[tuple[float, tuple[int, int]]] = field(default_factory=list)
    audio: deque = field(default_factory=lambda: deque(maxlen=48000))
    audio_frames: int = 0
    tasks: list[asyncio.Task] = field(default_factory=list)

    def attach(self) -> None:
        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.tasks.append(asyncio.ensure_future(self._consume(track)))

    async def _consume(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if track.kind == "video":
                    now = time.monotonic()
                    self.lumas.append((now, mean_luma(frame)))
                    self.sizes.append((now, (frame.width, frame.height)))
                    del self.lumas[:-2000], self.sizes[:-2000]
                else:
                    self.audio_frames += 1
                    pcm = frame.to_ndarray().reshape(-1)
                    channels = len(frame.layout.channels)
                    self.audio.extend(pcm[::channels].tolist())
        except (MediaStreamError, asyncio.CancelledError):
            pass

    def showing_point(self, since: float = 0.0) -> bool | None:
        """Whether the latest frame (after ``since``) is the point's picture; None before any."""
        recent = [luma for t, luma in self.lumas if t >= since]
        return None if not recent else recent[-1] < DARK

    def frames_since(self, since: float) -> list[float]:
        return [luma for t, luma in self.lumas if t >= since]

    def size_since(self, since: float) -> tuple[int, int] | None:
        """The latest decoded picture's size (after ``since``); None before any."""
        recent = [size for t, size in self.sizes if t >= since]
        return recent[-1] if recent else None

    def tones(self) -> dict[int, float]:
        return tone_levels(np.array(self.audio, dtype=np.int16))

    def first_switch(self, since: float, to_point: bool) -> float | None:
        """Monotonic time of the first frame after ``since`` showing the point (or the speaker)."""
        for t, luma in self.lumas:
            if t >= since and (luma < DARK) == to_point:
                return t
        return None

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await self.pc.close()
