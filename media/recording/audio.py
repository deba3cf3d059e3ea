"""Opus → PCM for the AAC encoder, on a gap-free sample clock.

Every HLS player (Safari/iOS, smart TVs) plays AAC, few play Opus in fMP4, so the recorder decodes
the speaker's Opus once and the muxer's AAC encoder re-encodes it. That encode is the recorder's
largest cost, and it scales with the channels: speech from a hall microphone is mono, so the
default :class:`AudioProfile` is mono (the Opus decoder mixes down) and stereo is a setting.

The encoder's input FIFO needs contiguous timestamps, and MP4 audio has no notion of gaps anyway:
missing packets (loss, DTX, a paused sender) become silence and late or duplicate packets are
dropped, so the audio track stays in step with the RTP clock and therefore with the video.
"""

from __future__ import annotations

import fractions
from dataclasses import dataclass

import av
from av.audio.frame import AudioFrame

RATE = 48000
FORMAT = "fltp"
TIME_BASE = fractions.Fraction(1, RATE)
MAX_SILENCE = 60 * RATE  # a longer jump is not filled: the clock is re-anchored instead


@dataclass(frozen=True)
class AudioProfile:
    """The recording's AAC track: channels (1 or 2) and bitrate in bit/s."""

    channels: int = 1
    bitrate: int = 64_000

    def __post_init__(self) -> None:
        if self.channels not in (1, 2):
            raise ValueError("channels must be 1 or 2")

    @property
    def layout(self) -> str:
        return "mono" if self.channels == 1 else "stereo"


def silence(samples: int, pts: int, layout: str) -> AudioFrame:
    frame = AudioFrame(format=FORMAT, layout=layout, samples=samples)
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    frame.sample_rate = RATE
    frame.pts = pts
    frame.time_base = TIME_BASE
    return frame


class OpusDecoder:
    """Decode Opus packets to 48 kHz stereo planar float frames with contiguous ``pts``.

    ``decode(pts, packet)`` takes the packet's position on the output clock (48 kHz ticks) and
    returns the frames to encode, silence included. ``reset()`` starts a new clock (a new run).
    """

    def __init__(self, layout: str = "mono") -> None:
        self.layout = layout
        self._codec = av.CodecContext.create("opus", "r")
        self._codec.layout = layout  # the decoder mixes down itself, cheaper than a resampler
        self._resampler: av.AudioResampler | None = None
        self.next_pts: int | None = None
        self._shift = 0
        self.silence_samples = 0
        self.dropped_packets = 0

    def reset(self, start: int | None = None) -> None:
        """A new clock; with ``start`` the output begins there (silence up to the first packet)."""
        self.next_pts = start
        self._shift = 0

    def _normalise(self, frame: AudioFrame) -> list[AudioFrame]:
        if (
            frame.format.name == FORMAT
            and frame.layout.name == self.layout
            and frame.sample_rate == RATE
        ):
            return [frame]
        if self._resampler is None:
            self._resampler = av.AudioResampler(format=FORMAT, layout=self.layout, rate=RATE)
        frame.pts = None
        return list(self._resampler.resample(frame))

    def decode(self, pts: int, data: bytes) -> list[AudioFrame]:
        packet = av.Packet(data)
        try:
            decoded = self._codec.decode(packet)
        except av.error.FFmpegError:
            self.dropped_packets += 1
            return []
        frames = [f for d in decoded for f in self._normalise(d)]
        out: list[AudioFrame] = []
        if self.next_pts is None:
            self.next_pts = pts
        gap = pts + self._shift - self.next_pts
        if abs(gap) >= MAX_SILENCE:
            self._shift -= gap  # the sender's clock jumped: re-anchor, stay contiguous
        elif gap < -(RATE // 100):
            self.dropped_packets += 1  # late or duplicate: its time slot is already filled
            return []
        elif gap > RATE // 100:
            self.silence_samples += gap
            while gap > 0:
                chunk = min(gap, RATE)
                out.append(silence(chunk, self.next_pts, self.layout))
                self.next_pts += chunk
                gap -= chunk
        for frame in frames:
            frame.pts = self.next_pts
            frame.time_base = TIME_BASE
            self.next_pts += frame.samples
            out.append(frame)
        return out
