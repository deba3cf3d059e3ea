"""Attendance records: who was connected when, headcounts reported by points, replay watched.

Replay counts from what the server served (``replay_served``, written by ``replay_meter``); what a
replay page reports (``replay_views``) is kept as information only.

Every join opens an ``AttendanceSession`` row and every leave closes it, committed as it happens
so that a crash loses nothing already recorded. Sessions are attributed to a connection point or a
member through the token's ``subject_id``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import (
    AttendanceSession,
    ConnectionPoint,
    HeadcountReport,
    Member,
    Recording,
    ReplayServed,
    ReplayView,
    utcnow,
)
from server.domain.intervals import total_seconds
from server.domain.rows import conference_row, owned_row

KINDS = ("webrtc", "presence", "hls")
HLS_TIMEOUT = dt.timedelta(seconds=45)  # players send a heartbeat every ~15 s
MAX_HEADCOUNT = 1_000_000


class AttendanceError(ValueError):
    pass


@dataclass(frozen=True)
class Subject:
    """What a token stands for: a connection point, a member, or nobody in particular."""

    type: str | None = None
    id: str | None = None


async def resolve_subject(
    db: AsyncSession, conference_id: str, role: str | None, subject_id: str | None
) -> Subject:
    if not subject_id:
        return Subject()
    if role == "point":
        if await owned_row(db, ConnectionPoint, subject_id, conference_id=conference_id) is not None:
            return Subject("point", subject_id)
    elif role in ("member", "viewer"):
        if await owned_row(db, Member, subject_id, conference_id=conference_id) is not None:
            return Subject("member", subject_id)
    return Subject()


async def open_session(
    db: AsyncSession,
    conference_id: str,
    kind: str,
    *,
    session_key: str | None,
    token_id: str | None,
    role: str,
    name: str,
    subject: Subject,
    node: str,
    at: dt.datetime | None = None,
) -> AttendanceSession:
    at = at or utcnow()
    row = AttendanceSession(
        conference_id=conference_id,
        kind=kind,
        session_key=session_key,
        token_id=token_id,
        role=role or "",
        name=(name or "")[:200],
        subject_type=subject.type,
        subject_id=subject.id,
        node=node,
        joined_at=at,
        last_seen_at=at,
    )
    db.add(row)
    await db.flush()
    return row


async def find_open(
    db: AsyncSession,
    conference_id: str,
    kind: str,
    *,
    session_key: str | None = None,
    token_id: str | None = None,
) -> AttendanceSession | None:
    """The oldest open session matching the key (WebRTC) or the token (presence, HLS)."""
    query = select(AttendanceSession).where(
        AttendanceSession.conference_id == conference_id,
        AttendanceSession.kind == kind,
        AttendanceSession.left_at.is_(None),
    )
    if session_key is not None:
        query = query.where(AttendanceSession.session_key == session_key)
    else:
        query = query.where(AttendanceSession.token_id == token_id)
    query = query.order_by(AttendanceSession.joined_at).limit(1)
    return (await db.execute(query)).scalar_one_or_none()


def close(row: AttendanceSession, at: dt.datetime, reason: str) -> None:
    row.left_at = max(at, row.joined_at)
    row.last_seen_at = row.left_at
    row.end_reason = reason


async def heartbeat(
    db: AsyncSession,
    conference_id: str,
    *,
    token_id: str,
    role: str,
    name: str,
    subject: Subject,
    node: str,
    kind: str = "hls",
    at: dt.datetime | None = None,
) -> AttendanceSession:
    """Extend the caller's heartbeat session, or start a new one after a gap longer than the timeout."""
    at = at or utcnow()
    row = await find_open(db, conference_id, kind, token_id=token_id)
    if row is not None and at - row.last_seen_at <= HLS_TIMEOUT:
        row.last_seen_at = max(at, row.last_seen_at)
        await db.flush()
        return row
    if row is not None:
        close(row, row.last_seen_at, "heartbeat_timeout")
    return await open_session(
        db,
        conference_id,
        kind,
        session_key=f"{kind}:{token_id}",
        token_id=token_id,
        role=role,
        name=name,
        subject=subject,
        node=node,
        at=at,
    )


async def close_stale_heartbeats(db: AsyncSession, now: dt.datetime | None = None) -> int:
    """Close HLS sessions whose player stopped sending heartbeats, at the last heartbeat."""
    now = now or utcnow()
    rows = (
        await db.execute(
            select(AttendanceSession).where(
                AttendanceSession.kind == "hls",
                AttendanceSession.left_at.is_(None),
                AttendanceSession.last_seen_at < now - HLS_TIMEOUT,
            )
        )
    ).scalars()
    count = 0
    for row in rows:
        close(row, row.last_seen_at, "heartbeat_timeout")
        count += 1
    await db.flush()
    return count


async def touch_node(db: AsyncSession, node: str, now: dt.datetime | None = None) -> None:
    """Mark this process's open sessions as alive now (used to bound them after a crash)."""
    await db.execute(
        update(AttendanceSession)
        .where(
            AttendanceSession.node == node,
            AttendanceSession.left_at.is_(None),
            AttendanceSession.kind != "hls",
        )
        .values(last_seen_at=now or utcnow())
    )


async def close_orphans(
    db: AsyncSession, *, node: str | None = None, stale_before: dt.datetime | None = None, reason: str
) -> int:
    """Close sessions left open by a process that died: this node's (at start-up) or silent ones.

    They end at their ``last_seen_at``: the last moment they were known to be connected.
    """
    conditions = [AttendanceSession.left_at.is_(None), AttendanceSession.kind != "hls"]
    if node is not None and stale_before is not None:
        conditions.append(
            or_(AttendanceSession.node == node, AttendanceSession.last_seen_at < stale_before)
        )
    elif node is not None:
        conditions.append(AttendanceSession.node == node)
    elif stale_before is not None:
        conditions.append(AttendanceSession.last_seen_at < stale_before)
    rows = list((await db.execute(select(AttendanceSession).where(and_(*conditions)))).scalars())
    for row in rows:
        close(row, row.last_seen_at, reason)
    await db.flush()
    return len(rows)


async def close_node_sessions(db: AsyncSession, node: str, reason: str, at: dt.datetime | None = None) -> int:
    at = at or utcnow()
    rows = list(
        (
            await db.execute(
                select(AttendanceSession).where(
                    AttendanceSession.node == node,
                    AttendanceSession.left_at.is_(None),
                    AttendanceSession.kind != "hls",
                )
            )
        ).scalars()
    )
    for row in rows:
        close(row, at, reason)
    await db.flush()
    return len(rows)


async def report_headcount(
    db: AsyncSession, conference_id: str, point_id: str, present: int, token_id: str | None
) -> HeadcountReport:
    await conference_row(db, ConnectionPoint, point_id, conference_id, LookupError)
    if not 0 <= present <= MAX_HEADCOUNT:
        raise AttendanceError(f"present must be between 0 and {MAX_HEADCOUNT}")
    row = HeadcountReport(
        conference_id=conference_id, point_id=point_id, present=present, token_id=token_id
    )
    db.add(row)
    await db.flush()
    return row


async def latest_headcounts(db: AsyncSession, conference_id: str) -> dict[str, HeadcountReport]:
    """The current (most recent) report of each point."""
    rows = (
        await db.execute(
            select(HeadcountReport)
            .where(HeadcountReport.conference_id == conference_id)
            .order_by(HeadcountReport.reported_at, HeadcountReport.id)
        )
    ).scalars()
    latest: dict[str, HeadcountReport] = {}
    for row in rows:
        previous = latest.get(row.point_id)
        if previous is None or row.reported_at >= previous.reported_at:
            latest[row.point_id] = row
    return latest


async def record_replay(
    db: AsyncSession,
    conference_id: str,
    *,
    token_id: str,
    subject: Subject,
    view_id: str,
    seconds_watched: float,
    duration_seconds: float | None,
) -> ReplayView:
    """Keep the largest ``seconds_watched`` reported for one viewing; viewings add up. Information
    only: make-up is counted from the segments served (``replay_served_seconds``)."""
    if seconds_watched < 0:
        raise AttendanceError("seconds_watched must not be negative")
    row = (
        await db.execute(
            select(ReplayView).where(
                ReplayView.conference_id == conference_id,
                ReplayView.token_id == token_id,
                ReplayView.view_id == view_id,
            )
        )
    ).scalar_one_or_none()
    now = utcnow()
    if row is None:
        row = ReplayView(
            conference_id=conference_id,
            token_id=token_id,
            view_id=view_id,
            subject_type=subject.type,
            subject_id=subject.id,
            seconds_watched=seconds_watched,
            duration_seconds=duration_seconds,
            started_at=now,
            updated_at=now,
        )
        db.add(row)
    else:
        row.seconds_watched = max(row.seconds_watched, seconds_watched)
        if duration_seconds:
            row.duration_seconds = duration_seconds
        row.updated_at = now
    await db.flush()
    return row


async def list_sessions(
    db: AsyncSession,
    conference_id: str,
    *,
    subject_id: str | None = None,
    token_id: str | None = None,
    offset: int = 0,
    limit: int = 1000,
) -> list[AttendanceSession]:
    query = select(AttendanceSession).where(AttendanceSession.conference_id == conference_id)
    if subject_id:
        query = query.where(AttendanceSession.subject_id == subject_id)
    if token_id:
        query = query.where(AttendanceSession.token_id == token_id)
    query = query.order_by(AttendanceSession.joined_at, AttendanceSession.id).offset(offset).limit(limit)
    return list((await db.execute(query)).scalars())


async def point_sessions(db: AsyncSession, conference_id: str) -> list[AttendanceSession]:
    return list(
        (
            await db.execute(
                select(AttendanceSession).where(
                    AttendanceSession.conference_id == conference_id,
                    AttendanceSession.subject_type == "point",
                )
            )
        ).scalars()
    )


async def replay_served_seconds(
    db: AsyncSession, conference_id: str, member_id: str | None = None
) -> dict[str, float]:
    """Seconds of recording served to each member (or just ``member_id``): distinct segments,
    whichever of the member's tokens fetched them (a re-issued link continues the count)."""
    conditions = [ReplayServed.conference_id == conference_id, ReplayServed.subject_type == "member"]
    if member_id is not None:
        conditions.append(ReplayServed.subject_id == member_id)
    distinct = (
        select(
            ReplayServed.subject_id,
            ReplayServed.recording_id,
            ReplayServed.segment,
            func.max(ReplayServed.seconds).label("seconds"),
        )
        .where(*conditions)
        .group_by(ReplayServed.subject_id, ReplayServed.recording_id, ReplayServed.segment)
        .subquery()
    )
    rows = await db.execute(
        select(distinct.c.subject_id, func.sum(distinct.c.seconds)).group_by(distinct.c.subject_id)
    )
    return {subject_id: float(seconds or 0.0) for subject_id, seconds in rows}


async def recorded_seconds(db: AsyncSession, conference_id: str) -> float:
    """How long the conference's recordings are together: what a member has to make up."""
    total = await db.execute(
        select(func.coalesce(func.sum(Recording.duration_seconds), 0.0)).where(
            Recording.conference_id == conference_id
        )
    )
    return float(total.scalar_one())


async def replay_views(db: AsyncSession, conference_id: str) -> list[ReplayView]:
    return list(
        (await db.execute(select(ReplayView).where(ReplayView.conference_id == conference_id))).scalars()
    )


async def member_live_ids(db: AsyncSession, conference_id: str) -> dict[str, float]:
    """Members with a live session of their own, and the seconds of each (open = until now)."""
    now = utcnow()
    rows = (
        await db.execute(
            select(AttendanceSession.subject_id, AttendanceSession.joined_at, AttendanceSession.left_at).where(
                AttendanceSession.conference_id == conference_id,
                AttendanceSession.subject_type == "member",
            )
        )
    ).tuples()
    spans: dict[str, list[tuple[dt.datetime, dt.datetime]]] = {}
    for subject_id, joined, left in rows:
        spans.setdefault(subject_id, []).append((joined, left or now))
    return {subject: total_seconds(s) for subject, s in spans.items()}


async def online_count(db: AsyncSession, conference_id: str, subject_type: str) -> int:
    return (
        await db.execute(
            select(func.count(func.distinct(AttendanceSession.subject_id))).where(
                AttendanceSession.conference_id == conference_id,
                AttendanceSession.subject_type == subject_type,
                AttendanceSession.left_at.is_(None),
            )
        )
    ).scalar_one()
