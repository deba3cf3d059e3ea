"""Retention policy: which finished recordings to delete (older than N days, or over a size budget).

Pure selection, so it is testable without files or a database; the server deletes what it returns.
Recordings still being written are never selected and still count towards the budget.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from media.recording.files import LOW_DIRECTORY


@dataclass(frozen=True)
class StoredRecording:
    id: str
    started_at: dt.datetime
    size_bytes: int
    active: bool = False


def select_expired(
    recordings: list[StoredRecording],
    now: dt.datetime,
    max_age_days: float | None = None,
    max_bytes: int | None = None,
) -> list[str]:
    """Ids to delete: every finished recording older than ``max_age_days``, then the oldest
    finished ones until the total size fits in ``max_bytes``."""
    doomed: list[str] = []
    kept = sorted(recordings, key=lambda r: r.started_at)
    if max_age_days is not None:
        cutoff = now - dt.timedelta(days=max_age_days)
        doomed += [r.id for r in kept if not r.active and r.started_at < cutoff]
        kept = [r for r in kept if r.id not in doomed]
    if max_bytes is not None:
        total = sum(r.size_bytes for r in kept)
        for r in kept:
            if total <= max_bytes:
                break
            if not r.active:
                doomed.append(r.id)
                total -= r.size_bytes
    return doomed


def directory_size(path: Path) -> int:
    """Bytes of a recording's files: in ``path`` and in its low variant's directory; 0 if it is gone."""
    return _files_size(path) + _files_size(path / LOW_DIRECTORY)


def _files_size(path: Path) -> int:
    try:
        with os.scandir(path) as entries:
            return sum(e.stat().st_size for e in entries if e.is_file(follow_symlinks=False))
    except FileNotFoundError:
        return 0
