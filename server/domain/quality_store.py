"""Link quality in the database: each point's totals for the report (``quality_points``) and the
organisers' alerts (``quality_alerts``), so a restart keeps the minutes, the pins and the alerts.

Totals are added to, never overwritten: the sampler adds what it measured since its last write,
one transaction per sample for every point of a conference.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import ConnectionPoint, QualityAlert, QualityPoint, utcnow
from server.db.upsert import insert_ignoring_conflicts

RENDITIONS = ("full", "low", "audio")


@dataclass
class Totals:
    """What to add to one point's row."""

    seconds: dict[str, float]  # rendition -> seconds watched on it
    seconds_poor: float = 0.0
    freezes: int = 0
    freeze_seconds: float = 0.0

    def empty(self) -> bool:
        return not (any(self.seconds.values()) or self.seconds_poor or self.freezes or self.freeze_seconds)


def no_totals() -> Totals:
    return Totals({r: 0.0 for r in RENDITIONS})


async def _rows(db: AsyncSession, conference_id: str, point_ids: list[str] | None = None) -> dict[str, QualityPoint]:
    query = select(QualityPoint).where(QualityPoint.conference_id == conference_id)
    if point_ids is not None:
        query = query.where(QualityPoint.point_id.in_(point_ids))
    return {row.point_id: row for row in (await db.execute(query)).scalars()}


async def _ensure_rows(db: AsyncSession, conference_id: str, point_ids: list[str]) -> dict[str, QualityPoint]:
    """The points' rows, created where missing, for points still in the database.

    One INSERT .. SELECT .. ON CONFLICT DO NOTHING before reading: the sampler and an operator's pin
    run in separate transactions and may both find a point without its row; a read-then-add would
    let the second insert fail on the primary key.
    """
    columns = ["conference_id", "point_id", "seconds_full", "seconds_low", "seconds_audio", "seconds_poor",
               "freezes", "freeze_seconds", "updated_at"]
    source = select(
        literal(conference_id), ConnectionPoint.id, literal(0.0), literal(0.0), literal(0.0), literal(0.0),
        literal(0), literal(0.0), literal(utcnow()),
    ).where(ConnectionPoint.id.in_(point_ids))
    await db.execute(insert_ignoring_conflicts(db, QualityPoint).from_select(columns, source))
    return await _rows(db, conference_id, point_ids)


async def add_totals(db: AsyncSession, conference_id: str, totals: dict[str, Totals]) -> None:
    """Add each point's ``totals`` to its row."""
    wanted = {pid: t for pid, t in totals.items() if not t.empty()}
    if not wanted:
        return
    rows = await _ensure_rows(db, conference_id, list(wanted))
    now = utcnow()
    for point_id, t in wanted.items():
        row = rows.get(point_id)
        if row is None:
            continue
        row.seconds_full += t.seconds.get("full", 0.0)
        row.seconds_low += t.seconds.get("low", 0.0)
        row.seconds_audio += t.seconds.get("audio", 0.0)
        row.seconds_poor += t.seconds_poor
        row.freezes += t.freezes
        row.freeze_seconds += t.freeze_seconds
        row.updated_at = now
    await db.flush()


async def set_pin(db: AsyncSession, conference_id: str, point_id: str, pin: str | None) -> None:
    row = (await _ensure_rows(db, conference_id, [point_id])).get(point_id)
    if row is not None:
        row.pinned = pin
        row.updated_at = utcnow()
        await db.flush()


async def pins(db: AsyncSession) -> dict[tuple[str, str], str]:
    """Every pinned rendition: (conference, point) -> rendition (loaded at start-up)."""
    query = select(QualityPoint).where(QualityPoint.pinned.is_not(None))
    return {(r.conference_id, r.point_id): r.pinned for r in (await db.execute(query)).scalars() if r.pinned}


async def totals_of(db: AsyncSession, conference_id: str) -> list[QualityPoint]:
    """Every point's row of the conference (points that never watched have none)."""
    return list((await _rows(db, conference_id)).values())


async def open_alert(
    db: AsyncSession, conference_id: str, point_id: str, point_name: str, level: str, kind: str, detail: str,
    at: dt.datetime,
) -> QualityAlert:
    alert = QualityAlert(conference_id=conference_id, point_id=point_id, point_name=point_name, level=level,
                         kind=kind, detail=detail[:200], started_at=at)
    db.add(alert)
    await db.flush()
    return alert


async def close_alert(db: AsyncSession, alert_id: str, at: dt.datetime) -> QualityAlert | None:
    alert = await db.get(QualityAlert, alert_id)
    if alert is not None and alert.ended_at is None:
        alert.ended_at = at
        await db.flush()
    return alert


async def close_open_alerts(db: AsyncSession, at: dt.datetime) -> int:
    """End the alerts a stopped server left open (start-up: nothing it measured then still holds)."""
    result = await db.execute(update(QualityAlert).where(QualityAlert.ended_at.is_(None)).values(ended_at=at))
    return int(result.rowcount or 0)


async def alerts(db: AsyncSession, conference_id: str, active: bool | None = None, limit: int = 200) -> list[QualityAlert]:
    """The conference's alerts, newest first; ``active`` True: only those still open, False: only ended."""
    query = select(QualityAlert).where(QualityAlert.conference_id == conference_id)
    if active is True:
        query = query.where(QualityAlert.ended_at.is_(None))
    elif active is False:
        query = query.where(QualityAlert.ended_at.is_not(None))
    query = query.order_by(QualityAlert.started_at.desc(), QualityAlert.id).limit(limit)
    return list((await db.execute(query)).scalars())
