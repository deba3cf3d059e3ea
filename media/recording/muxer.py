"""One *run* of a recording: a PyAV fragmented-MP4 muxer fed with H.264 access units and PCM.

Video packets are muxed as they arrived (Annex-B in, length-prefixed out; no decoder, no encoder);
audio is encoded to AAC here. The muxer cuts a fragment at the first keyframe after
``segment_seconds`` (``frag_keyframe`` + ``min_frag_duration``); each fragment becomes one HLS
segment. A run ends when its source ends or its parameter sets change: the next run starts a new
init segment behind an ``EXT-X-DISCONTINUITY``.
"""

from __future__ import annotations

import fractions
from dataclasses import dataclass

import av
from av.audio.frame import AudioFrame

from media.recording import audio as audio_mod
from media.recording.fmp4 import FragmentSplitter, TrackFragment, TrackInfo, parse_init, parse_moof

VIDEO_CLOCK = 90000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK)


@dataclass(frozen=True)
class VideoFormat:
    width: int
    height: int
    extradata: bytes  # Annex-B SPS + PPS

    @property
    def codec_string(self) -> str:
        sps = self.extradata[4:8]
        return f"avc1.{sps[1]:02x}{sps[2]:02x}{sps[3]:02x}" if len(sps) == 4 else "avc1"


@dataclass
class Fragment:
    """A finished fragment with its timing on the run's clock (seconds from the run's start)."""

    data: bytearray
    tracks: dict[int, TrackFragment]
    start: float
    duration: float


class RunMuxer:
    def __init__(
        self, video: VideoFormat | None, audio: audio_mod.AudioProfile | None, segment_seconds: float
    ) -> None:
        if video is None and audio is None:
            raise ValueError("a run needs audio or video")
        self.video_format = video
        self.splitter = FragmentSplitter()
        self.container = av.open(
            self.splitter,
            "w",
            format="mp4",
            options={
                "movflags": "frag_keyframe+empty_moov+default_base_moof",
                "min_frag_duration": str(int(segment_seconds * 1_000_000)),
                # Audio-only stretches must not hold video back for long in the interleaver.
                "max_interleave_delta": "1000000",
            },
        )
        self.video = None
        self.audio = None
        if video is not None:
            self.video = self.container.add_mux_stream("h264", width=video.width, height=video.height)
            self.video.time_base = VIDEO_TIME_BASE
        if audio is not None:
            # FFmpeg's default "twoloop" coder: the "fast" one missed the bitrate by up to 2x on
            # speech and cost more than twoloop on tonal audio (docs/architecture.md, Recording).
            self.audio = self.container.add_stream("aac", rate=audio_mod.RATE, layout=audio.layout)
            self.audio.bit_rate = audio.bitrate
            self.audio.time_base = audio_mod.TIME_BASE
        self.tracks: dict[int, TrackInfo] = {}
        self._main_track = 0
        self.closed = False

    @property
    def init(self) -> bytes | None:
        return self.splitter.init

    def write_video(self, pts: int, dts: int, duration: int, data: bytes, keyframe: bool) -> None:
        """One access unit in decode order; ``duration`` is the time to the next one's ``dts``."""
        assert self.video is not None
        packet = av.Packet(data)
        packet.pts = pts
        packet.dts = dts
        packet.duration = duration
        packet.time_base = VIDEO_TIME_BASE
        packet.stream = self.video
        packet.is_keyframe = keyframe
        self.container.mux(packet)

    def write_audio(self, frames: list[AudioFrame]) -> None:
        assert self.audio is not None
        for frame in frames:
            self.container.mux(self.audio.encode(frame))

    def close(self) -> None:
        """Flush the encoder and the last fragment (picked up by the next :meth:`fragments`)."""
        if self.closed:
            return
        self.closed = True
        if self.audio is not None:
            self.container.mux(self.audio.encode(None))
        self.container.close()

    def fragments(self) -> list[Fragment]:
        """Fragments completed since the last call, timed on the run's own clock."""
        out: list[Fragment] = []
        for raw in self.splitter.take():
            if not self.tracks:
                self.tracks = parse_init(self.splitter.init or b"")
                handlers = {t.handler: t.track_id for t in self.tracks.values()}
                self._main_track = handlers.get("vide") or handlers.get("soun") or 1
            tracks = parse_moof(raw)
            main = tracks.get(self._main_track) or next(iter(tracks.values()))
            scale = self.tracks[main.track_id].timescale
            out.append(Fragment(bytearray(raw), tracks, main.base_time / scale, main.duration / scale))
        return out

    def timescale(self, track_id: int) -> int:
        return self.tracks[track_id].timescale
