"""Attendance: live point status, headcounts, HLS heartbeats, replay progress, raw sessions.

WHEP and WebSocket joins/leaves reach the database through the ``AttendanceLog`` (started by the
lifespan); this router adds what clients report themselves. Point pages may also send
``{"type": "headcount", "present": N}`` over the conference WebSocket (``headcount_message``).
"""

from __future__ import annotations

import datetime as dt
import logging

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.api.guards import ANY_ROLE, conference_for
from server.api.paging import MAX_OFFSET
from server.db.models import AttendanceSession
from server.deps import AttendanceLogDep, BusDep, DbDep, PrincipalDep, RecordingsDep
from server.domain import attendance as domain
from server.domain.live_status import live_status
from server.domain.tokens import Principal
from server.events.bus import EventBus, conference_topic

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/conferences/{conference_id}", tags=["attendance"])


class HeadcountIn(BaseModel):
    present: int = Field(ge=0, le=domain.MAX_HEADCOUNT, description="delegates present in the room")


class HeadcountOut(BaseModel):
    point_id: str
    present: int
    reported_at: dt.datetime


class HeartbeatIn(BaseModel):
    kind: str = Field(default="hls", pattern="^hls$", description="what the client is watching")


class HeartbeatOut(BaseModel):
    session_id: str
    joined_at: dt.datetime
    interval_seconds: int = 15
    timeout_seconds: int = int(domain.HLS_TIMEOUT.total_seconds())


class ReplayIn(BaseModel):
    seconds_watched: float = Field(ge=0, le=7 * 24 * 3600, description="seconds watched in this viewing so far")
    view_id: str = Field(default="", max_length=64, description="one id per page load; viewings add up")
    duration_seconds: float | None = Field(default=None, gt=0, description="length of the recording")


class SessionOut(BaseModel):
    id: str
    kind: str
    role: str
    name: str
    token_id: str | None
    subject_type: str | None
    subject_id: str | None
    joined_at: dt.datetime
    left_at: dt.datetime | None
    last_seen_at: dt.datetime
    end_reason: str | None


def session_out(s: AttendanceSession) -> SessionOut:
    return SessionOut(
        id=s.id,
        kind=s.kind,
        role=s.role,
        name=s.name,
        token_id=s.token_id,
        subject_type=s.subject_type,
        subject_id=s.subject_id,
        joined_at=s.joined_at,
        left_at=s.left_at,
        last_seen_at=s.last_seen_at,
        end_reason=s.end_reason,
    )


async def headcount_message(
    sessionmaker: async_sessionmaker[AsyncSession], bus: EventBus, conference_id: str, principal: Principal,
    message: dict,
) -> dict | None:
    """``{"type": "headcount", "present": N}`` on the WebSocket; returns an error event to send back, if refused."""
    point_id = principal.subject_id if principal.role == "point" else message.get("point_id")
    present = message.get("present")
    refusal = None
    if principal.role == "point" and message.get("point_id") not in (None, point_id):
        refusal = "an operator reports only for its own point"
    elif principal.role not in ("point", "organiser", "admin") or not isinstance(point_id, str):
        refusal = "only a point's operator or an organiser (with point_id) reports a headcount"
    elif not isinstance(present, int) or isinstance(present, bool):
        refusal = "present must be a whole number"
    if refusal is None:
        async with sessionmaker() as db:
            try:
                await submit_headcount(bus, db, conference_id, point_id, present, principal.token_id)
                return None
            except (LookupError, domain.AttendanceError) as exc:
                refusal = str(exc) or type(exc).__name__
    log.info("headcount over WebSocket refused: %s", refusal)
    return {"type": "error", "for": "headcount", "detail": refusal}


async def submit_headcount(
    bus: EventBus, db: AsyncSession, conference_id: str, point_id: str, present: int, token_id: str | None
) -> HeadcountOut:
    """Store and commit a headcount, then announce it so dashboards update at once."""
    row = await domain.report_headcount(db, conference_id, point_id, present, token_id)
    out = HeadcountOut(point_id=row.point_id, present=row.present, reported_at=row.reported_at)
    await db.commit()
    await bus.publish(
        conference_topic(conference_id), {"type": "headcount.reported", **out.model_dump(mode="json")}
    )
    return out


@router.get("/attendance/status")
async def attendance_status(
    conference_id: str,
    db: DbDep,
    recordings: RecordingsDep,
    principal: PrincipalDep,
) -> dict:
    """Live view for the dashboard: every point connected or not, since when, headcount; totals;
    the recordings' disk space (``disk.low``: nothing is being recorded)."""
    conference = await conference_for(db, conference_id, principal, "organiser")
    return await live_status(db, conference, recordings.disk_status())


@router.get("/attendance/sessions", response_model=list[SessionOut])
async def attendance_sessions(
    conference_id: str,
    db: DbDep,
    principal: PrincipalDep,
    subject_id: str | None = None,
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    limit: int = Query(1000, ge=1, le=10000),
) -> list[SessionOut]:
    """Every recorded join..leave span, oldest first (``left_at`` null = still connected)."""
    await conference_for(db, conference_id, principal, "organiser")
    rows = await domain.list_sessions(db, conference_id, subject_id=subject_id, offset=offset, limit=limit)
    return [session_out(s) for s in rows]


@router.get("/attendance/me")
async def my_attendance(
    conference_id: str,
    db: DbDep,
    principal: PrincipalDep,
) -> dict:
    """A participant's own record: their sessions and replay viewing (by person when known):
    seconds of recording served to them, and what their replay pages reported."""
    await conference_for(db, conference_id, principal, *ANY_ROLE)
    if principal.token_id is None:
        raise HTTPException(400, "the admin has no attendance of its own")
    subject = await domain.resolve_subject(db, conference_id, principal.role, principal.subject_id)
    sessions = await domain.list_sessions(
        db, conference_id, subject_id=subject.id, token_id=None if subject.id else principal.token_id
    )
    views = [
        v for v in await domain.replay_views(db, conference_id)
        if (subject.id and v.subject_id == subject.id) or v.token_id == principal.token_id
    ]
    served = {}
    if subject.type == "member" and subject.id:
        served = await domain.replay_served_seconds(db, conference_id, subject.id)
    return {
        "subject_type": subject.type,
        "subject_id": subject.id,
        "sessions": [session_out(s).model_dump(mode="json") for s in sessions],
        "replay_seconds_watched": round(sum(v.seconds_watched for v in views), 1),
        "replay_views": len(views),
        "replay_seconds_served": round(served.get(subject.id or "", 0.0), 1),
    }


@router.post("/points/{point_id}/headcount", response_model=HeadcountOut, status_code=201)
async def report_headcount(
    conference_id: str,
    point_id: str,
    body: HeadcountIn,
    db: DbDep,
    bus: BusDep,
    principal: PrincipalDep,
) -> HeadcountOut:
    """The operator reports delegates present (at the start, and again whenever it changes)."""
    if principal.role == "point":
        await conference_for(db, conference_id, principal, "point")
        if principal.subject_id != point_id:
            raise HTTPException(403, "a point operator may only report the headcount of its own point")
    else:
        await conference_for(db, conference_id, principal, "organiser")
    try:
        return await submit_headcount(bus, db, conference_id, point_id, body.present, principal.token_id)
    except LookupError:
        raise HTTPException(404, f"unknown point '{point_id}'")
    except domain.AttendanceError as exc:
        raise HTTPException(422, str(exc))


async def _participant(
    db: AsyncSession, conference_id: str, principal: Principal, admin_refused: str
) -> tuple[str, domain.Subject]:
    """Any token of the conference but the admin's (what a client reports is tied to its token):
    the token id and the member or point it stands for; ``admin_refused`` is the 400 message."""
    await conference_for(db, conference_id, principal, *ANY_ROLE)
    if principal.token_id is None:
        raise HTTPException(400, admin_refused)
    subject = await domain.resolve_subject(db, conference_id, principal.role, principal.subject_id)
    return principal.token_id, subject


@router.post("/heartbeat", response_model=HeartbeatOut)
async def heartbeat(
    conference_id: str,
    db: DbDep,
    attendance_log: AttendanceLogDep,
    principal: PrincipalDep,
    body: HeartbeatIn | None = None,
) -> HeartbeatOut:
    """HLS players call this every ~15 s while playing; a gap over the timeout ends the session."""
    token_id, subject = await _participant(
        db, conference_id, principal, "heartbeats need a participant token, not the admin token"
    )
    row = await domain.heartbeat(
        db,
        conference_id,
        token_id=token_id,
        role=principal.role,
        name=principal.name,
        subject=subject,
        node=attendance_log.node,
        kind=(body or HeartbeatIn()).kind,
    )
    return HeartbeatOut(session_id=row.id, joined_at=row.joined_at)


@router.post("/replay-progress")
async def replay_progress(
    conference_id: str,
    body: ReplayIn,
    db: DbDep,
    principal: PrincipalDep,
) -> dict:
    """The replay page reports how long this viewing has been watched (monotonic per ``view_id``).
    Information only: make-up by replay is counted from the recording segments the server served."""
    token_id, subject = await _participant(
        db, conference_id, principal, "replay progress needs a participant token, not the admin token"
    )
    row = await domain.record_replay(
        db,
        conference_id,
        token_id=token_id,
        subject=subject,
        view_id=body.view_id,
        seconds_watched=body.seconds_watched,
        duration_seconds=body.duration_seconds,
    )
    return {"view_id": row.view_id, "seconds_watched": row.seconds_watched}
