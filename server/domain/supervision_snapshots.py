"""Remote supervision: with the conference opted in and its operator's consent, a point page sends a
small JPEG of its room every ``snapshot_interval_seconds``; the dashboard shows the latest one per
point, grouped by district. Snapshots are files under ``<data_dir>/snapshots/<conference>/`` kept
for ``snapshot_retention_seconds``, then deleted with their rows by :class:`SnapshotRetention`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db.models import RoomSnapshot, SnapshotSetting, utcnow
from server.domain.materials import conference_dir
from server.domain.rows import owned_row
from server.secret_files import write_secret_file

log = logging.getLogger(__name__)

JPEG = b"\xff\xd8\xff"
JPEG_END = b"\xff\xd9"


class SnapshotError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def snapshots_dir(data_dir: Path, conference_id: str) -> Path:
    return conference_dir(data_dir, conference_id).parent.parent / "snapshots" / conference_id


def snapshot_path(data_dir: Path, row: RoomSnapshot) -> Path:
    return snapshots_dir(data_dir, row.conference_id) / row.stored_name


async def enabled(db: AsyncSession, conference_id: str) -> bool:
    row = await db.get(SnapshotSetting, conference_id)
    return bool(row and row.enabled)


async def set_enabled(db: AsyncSession, conference_id: str, value: bool) -> None:
    row = await db.get(SnapshotSetting, conference_id)
    if row is None:
        row = SnapshotSetting(conference_id=conference_id)
        db.add(row)
    row.enabled, row.updated_at = int(value), utcnow()
    await db.flush()


def check_jpeg(data: bytes, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise SnapshotError(413, f"a snapshot may be at most {max_bytes} bytes")
    if not data.startswith(JPEG) or JPEG_END not in data[-64:]:
        raise SnapshotError(415, "a snapshot must be a JPEG image")


async def store(db: AsyncSession, data_dir: Path, conference_id: str, point_id: str, data: bytes) -> RoomSnapshot:
    """Keep one snapshot (already checked); the file is written before its row, and removed if the
    row cannot be."""
    stored_name = secrets.token_hex(16)
    path = snapshots_dir(data_dir, conference_id) / stored_name
    path.parent.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(write_secret_file, path, data)
    row = RoomSnapshot(conference_id=conference_id, point_id=point_id, stored_name=stored_name, size=len(data),
                       taken_at=utcnow())
    db.add(row)
    try:
        await db.flush()
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return row


async def get(db: AsyncSession, conference_id: str, snapshot_id: str) -> RoomSnapshot | None:
    return await owned_row(db, RoomSnapshot, snapshot_id, conference_id=conference_id)


async def latest_per_point(db: AsyncSession, conference_id: str) -> dict[str, RoomSnapshot]:
    newest = (
        select(RoomSnapshot.point_id, func.max(RoomSnapshot.taken_at).label("at"))
        .where(RoomSnapshot.conference_id == conference_id)
        .group_by(RoomSnapshot.point_id)
        .subquery()
    )
    rows = await db.execute(
        select(RoomSnapshot).join(newest, (RoomSnapshot.point_id == newest.c.point_id) & (RoomSnapshot.taken_at == newest.c.at))
        .where(RoomSnapshot.conference_id == conference_id)
    )
    return {r.point_id: r for r in rows.scalars()}


async def delete_older(db: AsyncSession, data_dir: Path, before: dt.datetime) -> int:
    rows = list((await db.execute(select(RoomSnapshot).where(RoomSnapshot.taken_at < before))).scalars())
    if not rows:
        return 0
    await db.execute(delete(RoomSnapshot).where(RoomSnapshot.id.in_([r.id for r in rows])))
    for row in rows:
        snapshot_path(data_dir, row).unlink(missing_ok=True)
    return len(rows)


class SnapshotRetention:
    """Deletes snapshots older than the retention period, at start-up and then every quarter of the
    period (at most hourly)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], data_dir: Path, retention_seconds: float) -> None:
        self.sessionmaker = sessionmaker
        self.data_dir = data_dir
        self.retention = dt.timedelta(seconds=retention_seconds)
        self.interval = min(3600.0, max(1.0, retention_seconds / 4))
        self._task: asyncio.Task[None] | None = None

    async def sweep(self) -> int:
        async with self.sessionmaker() as db:
            removed = await delete_older(db, self.data_dir, utcnow() - self.retention)
            await db.commit()
        if removed:
            log.info("deleted %d room snapshot(s) past their retention", removed)
        return removed

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("room snapshot retention failed; trying again later")
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="snapshot-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
