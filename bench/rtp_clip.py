"""The test clip as one publisher's RTP packets, the way a conference Router hands them to its readers
(the recorder): H.264 packetized by aiortc's own packetizer, one Opus frame per packet, sequence
numbers and timestamps from origins just below their wrap, so a few seconds cross both."""

from __future__ import annotations

import fractions
from collections.abc import Iterable

import av
from aiortc.codecs.h264 import H264Encoder

from bench.clip import Clip
from media.core.source import SourceStream
from media.recording.reader import RecordingReader
from media.recording.recorder import Recorder
from media.recording.sync import SourceClock

VIDEO_RATE, AUDIO_RATE = 90000, 48000
CODECS = {"video": ("video/h264", VIDEO_RATE), "audio": ("audio/opus", AUDIO_RATE)}
ORIGINS = {"video": 0xFFFF0000, "audio": 0xFFFF8000}  # RTP timestamps of the clip's start
FIRST_SEQ = {"video": 0xFF00, "audio": 0xFFF0}
_TIME_BASE = fractions.Fraction(1, VIDEO_RATE)
_packetizer = H264Encoder()

# (send time in seconds, source, sequence number, RTP timestamp, marker, payload)
Packet = tuple[float, SourceStream, int, int, int, bytes]


def h264_payloads(access_unit: bytes) -> list[bytes]:
    """One Annex-B access unit as RTP payloads (single NAL units, STAP-A, FU-A)."""
    packet = av.Packet(access_unit)
    packet.pts, packet.time_base = 0, _TIME_BASE
    return _packetizer.pack(packet)[0]


class RtpPublisher:
    """One publisher's sources; sequence numbers continue from call to call."""

    def __init__(self, producer_id: str = "publisher", kinds: tuple[str, ...] = ("audio", "video")) -> None:
        self.sources = {kind: SourceStream(kind, *CODECS[kind], producer_id) for kind in kinds}
        self.seq = {kind: FIRST_SEQ[kind] for kind in kinds}

    @property
    def producer_id(self) -> str:
        return next(iter(self.sources.values())).producer_id

    def join(self, recorder: Recorder, clocks: dict[str, SourceClock] | None = None) -> RtpPublisher:
        """Announce this publisher to ``recorder`` as the recording manager does, with its clocks
        (by default :meth:`clocks`; ``{}``: each kind from its first frame)."""
        recorder.add_publisher(self.producer_id, set(self.sources))
        recorder.set_clocks(self.producer_id, self.clocks() if clocks is None else clocks)
        return self

    def clocks(self, audio_delay: float = 0.0, wall: float = 1000.0) -> dict[str, SourceClock]:
        """The sender's clocks: the clip's start at ``wall`` seconds, its audio ``audio_delay`` later."""
        delays = {"video": 0.0, "audio": audio_delay}
        return {kind: SourceClock(ORIGINS[kind], wall + delays[kind], CODECS[kind][1]) for kind in self.sources}

    def video(self, frames: list[tuple[float, int, bytes]]) -> list[Packet]:
        """(send time, ticks after the origin, access unit) -> packets; the marker ends each frame."""
        source, out = self.sources["video"], []
        for at, ticks, data in frames:
            payloads = h264_payloads(data)
            ts = (ORIGINS["video"] + ticks) & 0xFFFFFFFF
            for i, payload in enumerate(payloads):
                out.append((at, source, self._next("video"), ts, int(i == len(payloads) - 1), payload))
        return out

    def audio(self, frames: list[tuple[float, int, bytes]]) -> list[Packet]:
        source = self.sources["audio"]
        return [(at, source, self._next("audio"), (ORIGINS["audio"] + ticks) & 0xFFFFFFFF, 0, data)
                for at, ticks, data in frames]

    def clip(self, clip: Clip, seconds: float, start: float = 0.0, skip_video: int = 0) -> list[Packet]:
        """The clip's first ``seconds`` (looped if longer) sent from ``start``, in send order;
        ``skip_video`` frames are left out at the beginning (a publisher joining mid-GOP)."""
        out: list[Packet] = []
        step = VIDEO_RATE // clip.fps
        if "video" in self.sources:
            count = int(seconds * clip.fps + 0.5)
            out += self.video([(start + i / clip.fps, round(start * VIDEO_RATE) + i * step,
                                clip.video[i % len(clip.video)][2]) for i in range(skip_video, count)])
        if "audio" in self.sources:
            count = int(seconds * 50 + 0.5)
            out += self.audio([(start + i * 0.02, round(start * AUDIO_RATE) + i * 960,
                                clip.audio[i % len(clip.audio)][1]) for i in range(count)])
        out.sort(key=lambda p: p[0])
        return out

    @staticmethod
    def send(reader: RecordingReader, packets: Iterable[Packet]) -> None:
        """Hand ``packets`` to a Router reader the way the Router does."""
        for _at, source, seq, ts, marker, payload in packets:
            reader.on_packet(source, seq, ts, marker, payload, False)

    def _next(self, kind: str) -> int:
        seq = self.seq[kind]
        self.seq[kind] = (seq + 1) & 0xFFFF
        return seq
