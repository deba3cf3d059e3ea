"""Close a recording whose writer died (``kill -9``, power cut): a valid VOD playlist from disk.

The playlist on disk already names every segment that was complete when it was last rewritten. A
segment renamed into place just before the crash, but not yet listed, is picked up too (its timing is
read from its ``moof``), so nothing that was fully written is lost. Temp files are half-written by
definition and are removed.

Damage stays local: a playlist that cannot be read is rebuilt from the segment files (each run's
first fragment is numbered 1 by its muxer, which ties segments to their init segments in order), and
the segments of a run whose init segment is unreadable are left out, with the reason in
:attr:`Recovered.problems`. A low variant (``low/``, media.recording.variants) is closed the same way;
the figures returned are the main variant's (its size includes the low variant's files).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from media.recording.files import INIT, LOW_DIRECTORY, PLAYLIST, SEGMENT, segment_name
from media.recording.fmp4 import TrackInfo, fragment_sequence, parse_init, parse_moof
from media.recording.playlist import Segment, atomic_write, parse, render
from media.recording.retention import directory_size

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recovered:
    segments: int
    duration: float
    size_bytes: int
    last_modified: float | None  # mtime of the newest segment (when recording stopped)
    first_program_date_time: float | None = None  # wall clock at the start, if the playlist had it
    problems: list[str] = field(default_factory=list)  # what could not be recovered, and why


def _listed(directory: Path, problems: list[str]) -> list[Segment] | None:
    """The playlist's segments; ``None`` if there is no playlist or it cannot be read."""
    playlist = directory / PLAYLIST
    if not playlist.exists():
        return None
    try:
        return parse(playlist.read_text())[0]
    except (OSError, ValueError, IndexError) as exc:  # UnicodeDecodeError is a ValueError
        problems.append(f"{PLAYLIST} unreadable ({exc}); rebuilt from the segment files")
        return None


def _main_track(directory: Path, init_name: str, cache: dict[str, TrackInfo | None], problems: list[str]) -> TrackInfo | None:
    if init_name not in cache:
        try:
            tracks = parse_init((directory / init_name).read_bytes())
            video = [t for t in tracks.values() if t.handler == "vide"]
            cache[init_name] = video[0] if video else next(iter(tracks.values()))
        except (OSError, ValueError, StopIteration) as exc:
            problems.append(f"{init_name} unreadable ({exc}); its segments are left out")
            cache[init_name] = None
    return cache[init_name]


def _unlisted(directory: Path, listed: list[Segment], segments: list[Segment], problems: list[str]) -> list[Segment]:
    """Complete segments after the last ``listed`` one, each with the init segment of its run,
    continuing the good ones (``segments``)."""
    names = [p.name for p in directory.iterdir()]
    last_listed = max((int(m.group(1)) for s in listed if (m := SEGMENT.match(s.uri))), default=-1)
    numbers = sorted(n for name in names if (m := SEGMENT.match(name)) and (n := int(m.group(1))) > last_listed)
    inits = sorted((int(m.group(1)), name) for name in names if (m := INIT.match(name)))
    if not numbers or not inits:
        return []
    run_names = [name for _, name in inits]
    current = listed[-1].map_uri if listed else None
    position = segments[-1].start + segments[-1].duration if segments else 0.0
    cache: dict[str, TrackInfo | None] = {}
    extra: list[Segment] = []
    new_run = False
    for path in (directory / segment_name(n) for n in numbers):
        try:
            data = path.read_bytes()
            first_of_run = fragment_sequence(data) == 1
        except (OSError, ValueError) as exc:
            problems.append(f"{path.name} unreadable ({exc}); the recording ends before it")
            break
        if first_of_run or current is None:
            following = run_names.index(current) + 1 if current in run_names else 0
            if following >= len(run_names):
                problems.append(f"{path.name} has no init segment; the recording ends before it")
                break
            current, new_run = run_names[following], True
        main = _main_track(directory, current, cache, problems)
        if main is None:
            continue
        try:
            frag = parse_moof(data).get(main.track_id)
        except ValueError as exc:
            problems.append(f"{path.name} unreadable ({exc}); the recording ends before it")
            break
        if frag is None:
            break
        duration = frag.duration / main.timescale
        extra.append(
            Segment(path.name, duration, position, current, discontinuity=new_run and bool(segments or extra))
        )
        new_run = False
        position += duration
    return extra


def close_interrupted(directory: Path, nominal_duration: float) -> Recovered:
    """Rewrite ``directory``'s playlist (and its low variant's) as a finished VOD playlist; returns
    what it now holds."""
    if not directory.is_dir():
        return Recovered(0, 0.0, 0, None)
    low = directory / LOW_DIRECTORY
    if low.is_dir():
        for problem in _close(low, nominal_duration).problems:
            log.error("%s: %s", low, problem)
    return _close(directory, nominal_duration)


def _close(directory: Path, nominal_duration: float) -> Recovered:
    for tmp in directory.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    problems: list[str] = []
    listed = _listed(directory, problems)
    inits: dict[str, TrackInfo | None] = {}
    segments = [
        s for s in listed or []
        if (directory / s.uri).exists() and _main_track(directory, s.map_uri, inits, problems) is not None
    ]
    segments += _unlisted(directory, listed or [], segments, problems)
    if segments:
        atomic_write(
            directory / PLAYLIST,
            render(segments, nominal_duration=nominal_duration, ended=True, playlist_type="VOD"),
        )
    size = directory_size(directory)
    last = max(((directory / s.uri).stat().st_mtime for s in segments), default=None)
    first_pdt = segments[0].program_date_time if segments else None
    return Recovered(len(segments), sum(s.duration for s in segments), size, last, first_pdt, problems)
