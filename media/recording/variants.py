"""The multivariant playlist of a recording (RFC 8216 4.4.6): its full and low renditions side by side.

A recording with a low variant (media.recording.manager) has two media playlists, ``index.m3u8``
(the program as published) and ``low/index.m3u8`` (the low rendition, on the same timeline, cut at
the same keyframes); ``master.m3u8`` names both with what a player needs to choose between them:
peak and average bitrate of the segments written, picture size, codecs and frame rate. hls.js starts
on the variant the viewer's bandwidth estimate carries and switches as the estimate moves.

A low variant no smaller than the full one (a program already at the low size is forwarded as is)
is left out: it would only double what a player might download for the same picture.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from media.recording.files import LOW_DIRECTORY, PLAYLIST
from media.recording.muxer import VIDEO_CLOCK
from media.recording.playlist import Segment
from media.recording.recorder import Recorder

LOW_PLAYLIST = f"{LOW_DIRECTORY}/{PLAYLIST}"
AAC_LC = "mp4a.40.2"  # the recorder's audio (media.recording.audio)
LOW_WAIT_SEGMENTS = 3  # the transcoder starts with the recording: its first segment follows soon
_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


@dataclass(frozen=True)
class Variant:
    """One ``EXT-X-STREAM-INF`` entry: a media playlist and its figures."""

    uri: str
    bandwidth: int  # bit/s of the segment with the highest rate
    average_bandwidth: int  # bit/s over every segment
    width: int
    height: int
    codecs: str
    frame_rate: float

    def stream_inf(self) -> str:
        return (
            f"#EXT-X-STREAM-INF:BANDWIDTH={self.bandwidth},AVERAGE-BANDWIDTH={self.average_bandwidth},"
            f'RESOLUTION={self.width}x{self.height},CODECS="{self.codecs}",FRAME-RATE={self.frame_rate:.3f}'
        )


def describe(recorder: Recorder, uri: str) -> Variant | None:
    """The variant ``recorder`` has written so far; ``None`` before its first segment with video."""
    segments: tuple[Segment, ...] = recorder.segments
    video = recorder.video_format
    timed = [s for s in segments if s.duration > 0]
    duration = sum(s.duration for s in timed)
    if video is None or not timed:
        return None
    peak = max(s.size * 8 / s.duration for s in timed)
    average = sum(s.size for s in timed) * 8 / duration
    codecs = f"{video.codec_string},{AAC_LC}" if recorder.has_audio else video.codec_string
    stats = recorder.stats
    frame_rate = stats.frames_muxed * VIDEO_CLOCK / stats.video_ticks if stats.video_ticks > 0 else 0.0
    return Variant(uri, round(peak), round(average), video.width, video.height, codecs, round(frame_rate, 3))


def variants_of(recorder: Recorder) -> list[Variant]:
    """The recording's variants: the full one, then the low one if it is smaller."""
    full = describe(recorder, PLAYLIST)
    if full is None:
        return []
    low = describe(recorder.low, LOW_PLAYLIST) if recorder.low is not None else None
    if low is None or low.width * low.height >= full.width * full.height:
        return [full]
    return [full, low]


def live_variants(recorder: Recorder) -> list[Variant]:
    """What a live multivariant playlist names now: nothing (not ready) while a low variant is still
    expected: a player reads the live master once, so one served before the low variant's first
    segment would leave its viewers on the full variant for good. It waits ``LOW_WAIT_SEGMENTS`` of
    the full variant's segments, then names what there is."""
    variants = variants_of(recorder)
    low = recorder.low
    if low is not None and not low.segments and len(recorder.segments) < LOW_WAIT_SEGMENTS:
        return []
    return variants


def render(variants: list[Variant], uris: dict[str, str] | None = None, query: str = "") -> str:
    """The multivariant playlist; ``uris`` renames a variant's URI as served, ``query`` signs them."""
    suffix = f"?{query}" if query else ""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for variant in variants:
        lines += [variant.stream_inf(), f"{(uris or {}).get(variant.uri, variant.uri)}{suffix}"]
    return "\n".join(lines) + "\n"


def parse(text: str) -> list[Variant]:
    """The variants of a playlist written by :func:`render` (stored URIs, no query)."""
    variants: list[Variant] = []
    attributes: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-STREAM-INF:"):
            attributes = {k: v.strip('"') for k, v in _ATTRIBUTE.findall(line.split(":", 1)[1])}
        elif line and not line.startswith("#") and attributes is not None:
            width, height = attributes["RESOLUTION"].split("x")
            variants.append(Variant(
                line.split("?", 1)[0], int(attributes["BANDWIDTH"]), int(attributes["AVERAGE-BANDWIDTH"]),
                int(width), int(height), attributes["CODECS"], float(attributes["FRAME-RATE"]),
            ))
            attributes = None
    return variants
