"""The floor in the database: the holder and lock (``floor_states``), the raised hands
(``floor_requests``) and the history (``floor_events``), so a restart loses nothing.

The database is the floor's source of truth; ``server.domain.floor`` keeps a copy in memory for
reads and reloads it here before every change (another node may have changed it).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import ConnectionPoint, FloorEvent, FloorRequest, FloorStateRow, utcnow
from server.domain.floor_state import FloorState, Holder, QueueEntry


async def load(db: AsyncSession, conference_id: str) -> FloorState:
    """The conference's floor as stored (an empty, unlocked floor when it was never used)."""
    state = FloorState(conference_id)
    row = await db.get(FloorStateRow, conference_id)
    if row is not None:
        state.locked = bool(row.locked)
        if row.point_id and row.grant_id and row.granted_at:
            state.current = Holder(
                grant_id=row.grant_id,
                point_id=row.point_id,
                point_name=row.point_name,
                level=row.level,
                subject=row.subject,
                granted_at=row.granted_at,
                limit_seconds=row.limit_seconds,
                ends_at=row.ends_at,
                muted=bool(row.muted),
            )
    query = (
        select(FloorRequest, ConnectionPoint.name, ConnectionPoint.level)
        .join(ConnectionPoint, ConnectionPoint.id == FloorRequest.point_id)
        .where(FloorRequest.conference_id == conference_id)
        .order_by(FloorRequest.requested_at, FloorRequest.id)
    )
    for request, name, level in await db.execute(query):
        state.queue.append(QueueEntry(request.point_id, name, level, request.subject, request.requested_at))
    return state


async def save(db: AsyncSession, state: FloorState) -> None:
    """Write the holder and the lock (the queue is written by the request functions below)."""
    row = await db.get(FloorStateRow, state.conference_id)
    if row is None:
        row = FloorStateRow(conference_id=state.conference_id)
        db.add(row)
    holder = state.current
    row.locked = int(state.locked)
    row.grant_id = holder.grant_id if holder else None
    row.point_id = holder.point_id if holder else None
    row.point_name = holder.point_name if holder else ""
    row.level = holder.level if holder else ""
    row.subject = holder.subject if holder else ""
    row.granted_at = holder.granted_at if holder else None
    row.limit_seconds = holder.limit_seconds if holder else None
    row.ends_at = holder.ends_at if holder else None
    row.muted = int(holder.muted) if holder else 0
    await db.flush()


async def put_request(db: AsyncSession, conference_id: str, point_id: str, subject: str, at: dt.datetime) -> None:
    """Queue a point's raised hand, or change the subject of one already queued (its place kept)."""
    row = (
        await db.execute(
            select(FloorRequest).where(FloorRequest.conference_id == conference_id, FloorRequest.point_id == point_id)
        )
    ).scalar_one_or_none()
    if row is None:
        db.add(FloorRequest(conference_id=conference_id, point_id=point_id, subject=subject, requested_at=at))
    else:
        row.subject = subject
    await db.flush()


async def drop_requests(db: AsyncSession, conference_id: str, point_id: str | None = None) -> None:
    """Take a point's hand out of the queue; every point's when ``point_id`` is None."""
    query = delete(FloorRequest).where(FloorRequest.conference_id == conference_id)
    if point_id is not None:
        query = query.where(FloorRequest.point_id == point_id)
    await db.execute(query)


async def record(
    db: AsyncSession,
    conference_id: str,
    kind: str,
    *,
    point_id: str | None = None,
    point_name: str = "",
    level: str = "",
    subject: str = "",
    grant_id: str | None = None,
    duration_seconds: float | None = None,
    reason: str | None = None,
    actor: str = "",
    at: dt.datetime | None = None,
) -> FloorEvent:
    """Append one event to the conference's floor history."""
    event = FloorEvent(
        conference_id=conference_id,
        at=at or utcnow(),
        kind=kind,
        grant_id=grant_id,
        point_id=point_id,
        point_name=point_name,
        level=level,
        subject=subject,
        duration_seconds=duration_seconds,
        reason=reason,
        actor=actor,
    )
    db.add(event)
    await db.flush()
    return event


async def history(db: AsyncSession, conference_id: str) -> list[FloorEvent]:
    """Every floor event of the conference, oldest first."""
    query = select(FloorEvent).where(FloorEvent.conference_id == conference_id)
    return list((await db.execute(query.order_by(FloorEvent.at, FloorEvent.id))).scalars())


async def held_floors(db: AsyncSession) -> list[str]:
    """Conferences whose floor someone holds (their timers are armed again at start-up)."""
    query = select(FloorStateRow.conference_id).where(FloorStateRow.point_id.is_not(None))
    return list((await db.execute(query)).scalars())
