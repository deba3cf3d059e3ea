"""Replay accounting from what the server served: each recording segment sent to a token holder.

A member who missed the conference makes it up by watching the recording; what a page reports
(``replay-progress``) cannot prove that, the segments the server sent can. Every media segment of a
recording fetched on a replay link or with a token is recorded once per (recording, token, segment)
with its duration; the report sums the distinct segments per member (see ``attendance``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from media.recording.playlist import parse
from media.recording.recorder import PLAYLIST, Recorder
from server.db.models import ReplayServed, utcnow
from server.db.upsert import insert_ignoring_conflicts
from server.domain.attendance import Subject

_SEGMENT = re.compile(r"^seg(\d{6,})\.m4s$")
MAX_SEEN = 200_000  # (recording, token, segment) keys remembered to skip repeated inserts
MAX_PLAYLISTS = 64  # finished recordings whose segment durations are kept parsed


def subject_of(role: str, subject_id: str | None) -> Subject:
    """Whom a token stands for, as issued (a point's or a member's personal token)."""
    if not subject_id:
        return Subject()
    if role == "point":
        return Subject("point", subject_id)
    if role in ("member", "viewer"):
        return Subject("member", subject_id)
    return Subject()


class ReplayMeter:
    """Records the segments served for replay; one per process, beside the recording service.

    It reads segment durations only, so it is handed the recordings' folder and the lookup of a live
    recorder (``RecordingService.root`` and ``.live_recorder``) rather than the service itself.
    """

    def __init__(self, root: Path, live_recorder: Callable[[str], Recorder | None]) -> None:
        self.root = root
        self.live_recorder = live_recorder
        self._seen: set[tuple[str, str, int]] = set()
        self._durations: dict[str, tuple[int, dict[str, float]]] = {}

    def segment_seconds(self, conference_id: str, recording_id: str, name: str) -> float | None:
        """The duration of segment ``name``, from the live recorder or the recording's playlist."""
        recorder = self.live_recorder(recording_id)
        if recorder is not None:
            for seg in reversed(recorder.segments):
                if seg.uri == name:
                    return seg.duration
        path = self.root / conference_id / recording_id / PLAYLIST
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return None
        cached = self._durations.get(recording_id)
        if cached is None or cached[0] != mtime:
            try:
                segments, _ = parse(path.read_text())
            except (OSError, ValueError, IndexError):
                return None
            if len(self._durations) >= MAX_PLAYLISTS:
                self._durations.clear()
            cached = (mtime, {s.uri: s.duration for s in segments})
            self._durations[recording_id] = cached
        return cached[1].get(name)

    async def served(
        self,
        db: AsyncSession,
        conference_id: str,
        recording_id: str,
        name: str,
        token_id: str,
        subject: Subject,
    ) -> bool:
        """Record that media segment ``name`` was sent to ``token_id``; False if not a media segment
        of the recording (init segments carry no time) or already recorded."""
        match = _SEGMENT.match(name)
        if match is None:
            return False
        key = (recording_id, token_id, int(match.group(1)))
        if key in self._seen:
            return False
        seconds = self.segment_seconds(conference_id, recording_id, name)
        if seconds is None:
            return False
        values = {
            "recording_id": recording_id,
            "token_id": token_id,
            "segment": key[2],
            "conference_id": conference_id,
            "subject_type": subject.type,
            "subject_id": subject.id,
            "seconds": seconds,
            "served_at": utcnow(),
        }
        await db.execute(insert_ignoring_conflicts(db, ReplayServed).values(**values))
        if len(self._seen) >= MAX_SEEN:
            self._seen.clear()
        self._seen.add(key)
        return True
