"""Close a recording whose writer died (``kill -9``, power cut): a valid VOD playlist from disk.

The playlist on disk already names every segment that was complete when it was last rewritten. A
segment renamed into place just before the crash, but not yet listed, is picked up too (its timing is
read from its ``moof``), so nothing that was fully written is lost. Temp files are half-written by
definition and are removed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from media.recording.fmp4 import parse_init, parse_moof
from media.recording.playlist import Segment, atomic_write, parse, render
from media.recording.recorder import PLAYLIST

_SEGMENT = re.compile(r"^seg(\d{6})\.m4s$")
_INIT = re.compile(r"^init(\d{3})\.mp4$")


@dataclass(frozen=True)
class Recovered:
    segments: int
    duration: float
    size_bytes: int
    last_modified: float | None  # mtime of the newest segment (when recording stopped)


def _unlisted(directory: Path, segments: list[Segment]) -> list[Segment]:
    listed = {s.uri for s in segments}
    numbers = sorted(
        int(m.group(1)) for p in directory.iterdir() if (m := _SEGMENT.match(p.name)) and p.name not in listed
    )
    inits = sorted(int(m.group(1)) for p in directory.iterdir() if (m := _INIT.match(p.name)))
    if not numbers or not inits:
        return []
    init_name = f"init{inits[-1]:03d}.mp4"
    tracks = parse_init((directory / init_name).read_bytes())
    video = [t for t in tracks.values() if t.handler == "vide"]
    main = video[0] if video else next(iter(tracks.values()))
    new_run = not segments or segments[-1].map_uri != init_name
    position = segments[-1].start + segments[-1].duration if segments else 0.0
    extra: list[Segment] = []
    for n in numbers:
        path = directory / f"seg{n:06d}.m4s"
        try:
            frag = parse_moof(path.read_bytes()).get(main.track_id)
        except ValueError:
            break
        if frag is None:
            break
        duration = frag.duration / main.timescale
        extra.append(
            Segment(path.name, duration, position, init_name, discontinuity=new_run and not extra and bool(segments))
        )
        position += duration
    return extra


def close_interrupted(directory: Path, nominal_duration: float) -> Recovered:
    """Rewrite ``directory``'s playlist as a finished VOD playlist; returns what it now holds."""
    if not directory.is_dir():
        return Recovered(0, 0.0, 0, None)
    for tmp in directory.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    playlist = directory / PLAYLIST
    segments: list[Segment] = parse(playlist.read_text())[0] if playlist.exists() else []
    segments = [s for s in segments if (directory / s.uri).exists()]
    segments += _unlisted(directory, segments)
    if segments:
        atomic_write(
            playlist, render(segments, nominal_duration=nominal_duration, ended=True, playlist_type="VOD")
        )
    size = sum(p.stat().st_size for p in directory.iterdir() if p.is_file())
    last = max(((directory / s.uri).stat().st_mtime for s in segments), default=None)
    return Recovered(len(segments), sum(s.duration for s in segments), size, last)
