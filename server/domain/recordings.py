"""Recordings: database rows, chapters, crash recovery, retention, and the service that ties the
media recorder (``media.recording``) to them.

The recorder writes files from its own thread; this layer only mirrors its lifecycle into the
database (one writer task, so a row is inserted before it is updated) and answers the API. Files are
the truth for what was recorded; the row is the index (status, duration, size, chapters).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from media.recording.audio import AudioProfile
from media.recording.disk_space import DiskGuard
from media.recording.manager import RecordingManager
from media.recording.files import LOW_DIRECTORY, MASTER
from media.recording.playlist import Segment
from media.recording.playlist import parse as parse_playlist
from media.recording.recorder import PLAYLIST, Recorder
from media.recording.recovery import close_interrupted
from media.recording.retention import StoredRecording, directory_size, select_expired
from media.recording.variants import Variant, live_variants, variants_of
from media.recording.variants import parse as parse_variants
from server.db.models import Conference, Recording, RecordingChapter, new_id, utcnow
from server.domain.mp4_builds import Mp4Build, Mp4Builds
from server.domain.rows import delete_owned_row
from server.domain.signed_links import LinkSigner
from server.events.bus import Event
from server.settings import Settings

log = logging.getLogger(__name__)

STATUSES = ("recording", "complete", "interrupted")
PROGRESS_EVERY = 10.0  # seconds between progress writes of a live recording's row
RETENTION_EVERY = 3600.0
FOLDER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")  # conference and recording ids
RECENT_LIVE = 600.0  # a just-finished recording stays on the live URL (with ENDLIST) this long
DOWNLOAD_NAME = "download.mp4"


class RecordingNotFound(LookupError):
    pass


class RecordingBusy(RuntimeError):
    """The operation needs a finished recording."""


def aware(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite returns naive datetimes; every stored time is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


# --- rows ----------------------------------------------------------------------------------------
async def get_recording(db: AsyncSession, recording_id: str) -> Recording:
    row = await db.get(Recording, recording_id)
    if row is None:
        raise RecordingNotFound(recording_id)
    return row


async def list_recordings(db: AsyncSession, conference_id: str | None = None) -> list[Recording]:
    query = select(Recording).order_by(Recording.started_at.desc())
    if conference_id is not None:
        query = query.where(Recording.conference_id == conference_id)
    return list((await db.execute(query)).scalars())


async def list_chapters(db: AsyncSession, recording_id: str) -> list[RecordingChapter]:
    query = (
        select(RecordingChapter)
        .where(RecordingChapter.recording_id == recording_id)
        .order_by(RecordingChapter.at_seconds, RecordingChapter.created_at)
    )
    return list((await db.execute(query)).scalars())


async def add_chapter(db: AsyncSession, recording_id: str, title: str, at_seconds: float) -> RecordingChapter:
    chapter = RecordingChapter(recording_id=recording_id, title=title, at_seconds=max(0.0, at_seconds))
    db.add(chapter)
    await db.flush()
    return chapter


async def delete_chapter(db: AsyncSession, recording_id: str, chapter_id: str) -> bool:
    return await delete_owned_row(db, RecordingChapter, chapter_id, recording_id=recording_id)


# --- the service ---------------------------------------------------------------------------------
@dataclass
class LiveView:
    """What the live URL of a conference currently shows."""

    recording_id: str
    segments: tuple[Segment, ...]
    ended: bool
    low: tuple[Segment, ...] = ()  # the low variant's segments
    recorder: Recorder | None = None  # whose they are (live_variants: only the master asks, once per player)

    def variants(self) -> list[Variant]:
        """What the live multivariant playlist names now (nothing: not yet)."""
        return live_variants(self.recorder) if self.recorder is not None else []

    def names(self, window: int, slack: int = 3, low: bool = False) -> set[str]:
        """Files a live link may fetch: the playlist's last ``window`` segments (and ``slack`` more,
        for a player still loading one that just left the window) with their init segments."""
        shown = (self.low if low else self.segments)[-(window + slack) :]
        return {s.uri for s in shown} | {s.map_uri for s in shown}


class RecordingService:
    """Owns the :class:`RecordingManager` of this process and keeps the database in step with it."""

    def __init__(
        self,
        root: Path,
        sessionmaker: async_sessionmaker[AsyncSession],
        signer: LinkSigner,
        segment_seconds: float,
        idle_seconds: float,
        retention_days: float | None,
        retention_max_bytes: int | None,
        audio: AudioProfile = AudioProfile(),
        min_free_bytes: int = 0,
        low_variant: bool = False,
    ) -> None:
        self.root = root
        self.disk = DiskGuard(root, min_free_bytes)
        self.sessionmaker = sessionmaker
        self.signer = signer
        self.segment_seconds = segment_seconds
        self.retention_days = retention_days
        self.retention_max_bytes = retention_max_bytes
        self.manager = RecordingManager(
            root,
            new_id,
            segment_seconds=segment_seconds,
            idle_seconds=idle_seconds,
            on_started=self._started,
            on_segment=self._progress,
            on_finished=self._finished,
            audio=audio,
            room=self.disk.room,
            low_variant=low_variant,
        )
        self._writes: asyncio.Queue[Callable[[AsyncSession], Awaitable[None]] | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._last_progress: dict[str, float] = {}
        self._recent: dict[str, tuple[Recorder, float]] = {}
        self.mp4_builds = Mp4Builds()

    @classmethod
    def from_settings(cls, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> RecordingService:
        """The service as configured: recordings under the data dir, links signed with its key."""
        return cls(
            root=settings.data_dir / "recordings",
            sessionmaker=sessionmaker,
            signer=LinkSigner.load(settings.data_dir),
            segment_seconds=settings.hls_segment_seconds,
            idle_seconds=settings.recording_idle_seconds,
            retention_days=settings.retention_days,
            retention_max_bytes=settings.retention_max_bytes,
            audio=AudioProfile(settings.recording_audio_channels, settings.recording_audio_bitrate),
            min_free_bytes=settings.recording_min_free_bytes,
            low_variant=settings.hls_low_variant,
        )

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        await self.recover()
        await self.apply_retention()
        self._tasks.append(asyncio.ensure_future(self._db_writer()))
        self._tasks.append(asyncio.ensure_future(self._retention_loop()))

    async def shutdown(self) -> None:
        await self.manager.shutdown()
        await self.mp4_builds.shutdown()
        await self._writes.put(None)
        if self._tasks:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._tasks[0]), 10)
        for task in self._tasks:
            task.cancel()

    def directory(self, row: Recording) -> Path:
        return self.root / row.path

    async def recover(self) -> list[str]:
        """Close rows left ``recording`` by a crash as ``interrupted`` (or drop them if empty), then
        adopt folders that have no row. One damaged recording is logged and left as it is found:
        it never keeps the others from recovering, nor the server from starting."""
        closed: list[str] = []
        async with self.sessionmaker() as db:
            rows = (await db.execute(select(Recording).where(Recording.status == "recording"))).scalars()
            for row in list(rows):
                directory = self.directory(row)
                try:
                    found = await asyncio.to_thread(close_interrupted, directory, self.segment_seconds)
                except Exception:
                    log.exception("recording %s: recovery failed; marked interrupted, files left as found", row.id)
                    row.status = "interrupted"
                    row.ended_at = row.ended_at or utcnow()
                    closed.append(row.id)
                    continue
                for problem in found.problems:
                    log.error("recording %s: %s", row.id, problem)
                if found.segments == 0 and not found.problems:
                    await db.delete(row)
                    shutil.rmtree(directory, ignore_errors=True)
                    continue
                row.status = "interrupted"
                row.duration_seconds = found.duration
                row.size_bytes = found.size_bytes
                row.segment_count = found.segments
                row.ended_at = (
                    dt.datetime.fromtimestamp(found.last_modified, dt.UTC) if found.last_modified else utcnow()
                )
                closed.append(row.id)
                log.warning("recording %s was interrupted: closed at %.1f s", row.id, found.duration)
            await db.commit()
        closed += await self.adopt_orphans()
        return closed

    async def adopt_orphans(self) -> list[str]:
        """Folders with no row (the server died before writing it, or while deleting one): adopted
        as interrupted recordings of their conference; an unknown conference's are only reported."""
        adopted: list[str] = []
        async with self.sessionmaker() as db:
            known = set((await db.execute(select(Recording.path))).scalars())
            conferences = set((await db.execute(select(Conference.id))).scalars())
            for path in await asyncio.to_thread(self._folders):
                if path in known:
                    continue
                conference_id, recording_id = path.split("/")
                directory = self.root / path
                if conference_id not in conferences or await db.get(Recording, recording_id) is not None:
                    log.error(
                        "recording folder %s belongs to no known conference or recording: left on disk (%d bytes)",
                        directory, await asyncio.to_thread(directory_size, directory),
                    )
                    continue
                try:
                    found = await asyncio.to_thread(close_interrupted, directory, self.segment_seconds)
                except Exception:
                    log.exception("recording folder %s: recovery failed; left on disk", directory)
                    continue
                for problem in found.problems:
                    log.error("recording %s: %s", recording_id, problem)
                if found.segments == 0:
                    if not found.problems:
                        shutil.rmtree(directory, ignore_errors=True)
                    continue
                started = found.first_program_date_time or min(
                    (p.stat().st_mtime for p in directory.iterdir() if p.is_file()), default=time.time()
                )
                db.add(
                    Recording(
                        id=recording_id,
                        conference_id=conference_id,
                        status="interrupted",
                        path=path,
                        started_at=dt.datetime.fromtimestamp(started, dt.UTC),
                        ended_at=dt.datetime.fromtimestamp(found.last_modified or started, dt.UTC),
                        duration_seconds=found.duration,
                        size_bytes=found.size_bytes,
                        segment_count=found.segments,
                    )
                )
                adopted.append(recording_id)
                log.warning("recording %s had no row: adopted as interrupted (%.1f s)", recording_id, found.duration)
            await db.commit()
        return adopted

    def _folders(self) -> list[str]:
        """``conference/recording`` paths of the folders under the root that could be recordings."""
        out = []
        for conference in sorted(self.root.iterdir()) if self.root.is_dir() else []:
            if conference.is_dir() and FOLDER_NAME.match(conference.name):
                out += [
                    f"{conference.name}/{r.name}"
                    for r in sorted(conference.iterdir())
                    if r.is_dir() and FOLDER_NAME.match(r.name)
                ]
        return out

    # --- manager callbacks (event loop) ----------------------------------------------------------
    def _started(self, recorder: Recorder) -> None:
        started = dt.datetime.fromtimestamp(recorder.started_at, dt.UTC)

        async def write(db: AsyncSession) -> None:
            db.add(
                Recording(
                    id=recorder.id,
                    conference_id=recorder.conference_id,
                    status="recording",
                    path=f"{recorder.conference_id}/{recorder.id}",
                    started_at=started,
                )
            )

        self._writes.put_nowait(write)

    def _progress(self, recorder: Recorder) -> None:
        now = time.monotonic()
        if now - self._last_progress.get(recorder.id, 0.0) < PROGRESS_EVERY:
            return
        self._last_progress[recorder.id] = now
        duration, size, count = recorder.duration, recorder.size_bytes, len(recorder.segments)

        async def write(db: AsyncSession) -> None:
            row = await db.get(Recording, recorder.id)
            if row is not None and row.status == "recording":
                row.duration_seconds, row.size_bytes, row.segment_count = duration, size, count

        self._writes.put_nowait(write)

    def _finished(self, recorder: Recorder) -> None:
        self._last_progress.pop(recorder.id, None)
        self._recent[recorder.conference_id] = (recorder, time.monotonic())
        duration, count = recorder.duration, len(recorder.segments)
        directory = recorder.directory

        async def write(db: AsyncSession) -> None:
            row = await db.get(Recording, recorder.id)
            if row is None:
                return
            if count == 0:
                await db.delete(row)
                shutil.rmtree(directory, ignore_errors=True)
                return
            row.status = "complete"
            row.ended_at = utcnow()
            row.duration_seconds = duration
            row.size_bytes = directory_size(directory)
            row.segment_count = count

        self._writes.put_nowait(write)
        if self.retention_max_bytes is not None:
            self._writes.put_nowait(lambda db: self._retention_in(db))

    async def _db_writer(self) -> None:
        while True:
            write = await self._writes.get()
            if write is None:
                return
            try:
                async with self.sessionmaker() as db:
                    await write(db)
                    await db.commit()
            except Exception:
                log.exception("recording database update failed")

    def on_bus_event(self, event: Event) -> None:
        """``conference.ended`` on the bus finalises that conference's recording."""
        if event.get("type") != "conference.ended":
            return
        topic = str(event.get("topic", ""))
        conference_id = event.get("conference_id") or topic.removeprefix("conference.")
        if conference_id:
            asyncio.ensure_future(self.manager.stop(conference_id))

    # --- queries for the API ---------------------------------------------------------------------
    def disk_status(self) -> dict[str, Any]:
        """Free space under the recordings, for the dashboard: ``low`` means nothing is recorded."""
        state = self.disk.state()
        return {
            "free_bytes": state.free_bytes,
            "total_bytes": state.total_bytes,
            "min_free_bytes": state.min_free_bytes,
            "low": state.low,
            "recording_paused": any(r.paused_for_disk for r in self.manager.recorders()),
            "refused_recordings": self.manager.refused,
        }

    def live_recorder(self, recording_id: str) -> Recorder | None:
        return self.manager.get(recording_id)

    def live_view(self, conference_id: str) -> LiveView | None:
        recorder, ended = self.manager.active(conference_id), False
        if recorder is None:
            recent = self._recent.get(conference_id)
            if recent is None or time.monotonic() - recent[1] >= RECENT_LIVE:
                return None
            recorder, ended = recent[0], True
        if not recorder.segments:
            return None
        low = recorder.low.segments if recorder.low is not None else ()
        return LiveView(recorder.id, recorder.segments, ended, low, recorder)

    def variants(self, conference_id: str, recording_id: str) -> list[Variant] | None:
        """A recording's variants: as written so far while it is live, else as its ``master.m3u8``
        says; ``None`` for a recording made before there were variants (it has ``index.m3u8`` only)."""
        recorder = self.manager.get(recording_id)
        if recorder is not None and recorder.conference_id == conference_id:
            return variants_of(recorder)
        path = self.root / conference_id / recording_id / MASTER
        if not path.is_file():
            return None
        try:
            return parse_variants(path.read_text())
        except (OSError, ValueError, KeyError) as exc:  # damaged: the recording still plays its index.m3u8
            log.error("recording %s: %s unreadable (%s); served without variants", recording_id, MASTER, exc)
            return None

    def low_playlist(self, conference_id: str, recording_id: str) -> tuple[tuple[Segment, ...], bool] | None:
        """The low variant's segments and whether it has ended; ``None`` if the recording has none."""
        recorder = self.manager.get(recording_id)
        if recorder is not None and recorder.conference_id == conference_id:
            return (recorder.low.segments, False) if recorder.low is not None else None
        path = self.root / conference_id / recording_id / LOW_DIRECTORY / PLAYLIST
        if not path.is_file():
            return None
        segments, ended = parse_playlist(path.read_text())
        return tuple(segments), ended

    def overlay(self, row: Recording) -> dict[str, Any]:
        """Row fields, with live numbers from the recorder while it is being written."""
        recorder = self.manager.get(row.id) if row.status == "recording" else None
        return {
            "id": row.id,
            "conference_id": row.conference_id,
            "status": row.status,
            "started_at": aware(row.started_at),
            "ended_at": aware(row.ended_at),
            "duration_seconds": round(recorder.duration if recorder else row.duration_seconds, 3),
            "size_bytes": recorder.size_bytes if recorder else row.size_bytes,
            "segment_count": len(recorder.segments) if recorder else row.segment_count,
            "live": recorder is not None,
        }

    def playlist_text(self, row: Recording) -> str | None:
        """The stored playlist (EVENT while recording, VOD after), or ``None`` if nothing yet."""
        path = self.directory(row) / PLAYLIST
        return path.read_text() if path.exists() else None

    def position(self, recording_id: str) -> float | None:
        recorder = self.manager.get(recording_id)
        return recorder.position if recorder else None

    async def stop(self, conference_id: str) -> str | None:
        """Finalise the conference's recording; returns once its row says so."""
        recorder = await self.manager.stop(conference_id)
        await self.flush()
        return recorder.id if recorder else None

    async def flush(self) -> None:
        """Wait until every database update queued so far is written."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def mark(db: AsyncSession) -> None:
            done.set_result(None)

        self._writes.put_nowait(mark)
        await asyncio.wait_for(done, 30)

    async def delete(self, db: AsyncSession, row: Recording) -> None:
        if row.status == "recording" and self.manager.get(row.id) is not None:
            raise RecordingBusy("stop the recording before deleting it")
        directory = self.directory(row)
        await db.delete(row)
        await asyncio.to_thread(shutil.rmtree, directory, True)

    def mp4(self, row: Recording) -> Mp4Build:
        """The recording as one faststart MP4: made once in the background, then served as a file."""
        if row.status == "recording":
            raise RecordingBusy("the recording is still being written")
        directory = self.directory(row)
        target = directory / DOWNLOAD_NAME
        playlist = directory / PLAYLIST
        if not target.exists() and not playlist.exists():
            raise RecordingNotFound(row.id)
        return self.mp4_builds.ensure(row.id, playlist, target)

    # --- retention -------------------------------------------------------------------------------
    async def apply_retention(self) -> list[str]:
        if self.retention_days is None and self.retention_max_bytes is None:
            return []
        async with self.sessionmaker() as db:
            deleted = await self._retention_in(db)
            await db.commit()
        return deleted

    async def _retention_in(self, db: AsyncSession) -> list[str]:
        rows = list((await db.execute(select(Recording))).scalars())
        active = {r.id for r in self.manager.recorders()}
        stored = []
        for row in rows:
            size = await asyncio.to_thread(directory_size, self.directory(row))
            stored.append(
                StoredRecording(row.id, aware(row.started_at) or utcnow(), size, row.id in active)
            )
        doomed = set(
            select_expired(stored, utcnow(), self.retention_days, self.retention_max_bytes)
        )
        for row in rows:
            if row.id in doomed:
                log.info("retention: deleting recording %s of %s", row.id, row.started_at)
                await db.delete(row)
                await asyncio.to_thread(shutil.rmtree, self.directory(row), True)
        return sorted(doomed)

    async def _retention_loop(self) -> None:
        while True:
            await asyncio.sleep(RETENTION_EVERY)
            try:
                await self.apply_retention()
            except Exception:
                log.exception("retention failed")
