"""HLS media playlists (RFC 8216, version 7 for fMP4): render, parse back, and write atomically.

The playlist on disk is the recording's source of truth after a crash: it is rewritten (temp file +
rename) after every completed segment, so it only ever names files that are fully written.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Segment:
    uri: str  # file name inside the recording directory
    duration: float
    start: float  # position on the recording's timeline (seconds)
    map_uri: str  # its init segment
    size: int = 0
    discontinuity: bool = False
    program_date_time: float | None = None  # wall clock (unix seconds) at ``start``, per run


def target_duration(segments: list[Segment] | tuple[Segment, ...], nominal: float) -> int:
    longest = max((s.duration for s in segments), default=nominal)
    return max(1, math.ceil(max(longest, nominal) - 1e-3))


def _pdt(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def render(
    segments: list[Segment] | tuple[Segment, ...],
    *,
    nominal_duration: float,
    ended: bool,
    playlist_type: str | None = None,
    window: int | None = None,
    uri_prefix: str = "",
    query: str = "",
) -> str:
    """A media playlist over ``segments`` (the last ``window`` of them for a sliding live window).

    ``uri_prefix``/``query`` decorate every URI (a relative directory, a signature) without touching
    the stored names.
    """
    all_segments = list(segments)
    first = max(0, len(all_segments) - window) if window else 0
    shown = all_segments[first:]
    discontinuity_sequence = sum(1 for s in all_segments[1 : first + 1] if s.discontinuity)
    suffix = f"?{query}" if query else ""
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{target_duration(all_segments, nominal_duration)}",
        f"#EXT-X-MEDIA-SEQUENCE:{first}",
    ]
    if discontinuity_sequence:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}")
    if playlist_type:
        lines.append(f"#EXT-X-PLAYLIST-TYPE:{playlist_type}")
    lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    current_map = None
    for i, seg in enumerate(shown):
        if seg.discontinuity and i > 0:
            lines.append("#EXT-X-DISCONTINUITY")
        if seg.map_uri != current_map:
            lines.append(f'#EXT-X-MAP:URI="{uri_prefix}{seg.map_uri}{suffix}"')
            current_map = seg.map_uri
        if seg.program_date_time is not None:
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_pdt(seg.program_date_time)}")
        lines.append(f"#EXTINF:{seg.duration:.5f},")
        lines.append(f"{uri_prefix}{seg.uri}{suffix}")
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def parse(text: str) -> tuple[list[Segment], bool]:
    """Segments and the ENDLIST flag of a playlist written by :func:`render` (no window, no query)."""
    segments: list[Segment] = []
    ended = False
    current_map = ""
    discontinuity = False
    pdt: float | None = None
    duration: float | None = None
    position = 0.0
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#EXT-X-MAP:"):
            current_map = line.split('URI="', 1)[1].split('"', 1)[0]
        elif line == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            value = line.split(":", 1)[1].replace("Z", "+00:00")
            pdt = dt.datetime.fromisoformat(value).timestamp()
        elif line.startswith("#EXTINF:"):
            duration = float(line[8:].split(",", 1)[0])
        elif line == "#EXT-X-ENDLIST":
            ended = True
        elif not line.startswith("#") and duration is not None:
            segments.append(
                Segment(
                    uri=line.split("?", 1)[0],
                    duration=duration,
                    start=position,
                    map_uri=current_map.split("?", 1)[0],
                    discontinuity=discontinuity and bool(segments),
                    program_date_time=pdt,
                )
            )
            position += duration
            duration, pdt, discontinuity = None, None, False
    return segments, ended


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write next to ``path`` and rename over it: readers (and a crash) see old or new, never half.

    The data is on disk before the rename (so a power cut cannot leave a renamed but empty file),
    and the directory after it (so the new name survives too): a playlist never names a segment
    that a power cut could take back.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    payload = data.encode() if isinstance(data, str) else data
    with open(tmp, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
