"""The floor (REST): raise and lower hands, grant, end, mute, lock, end all, history.

Thin over :class:`server.domain.floor.FloorService`, which decides who may do what, so that the
WebSocket's ``floor.*`` messages (:func:`floor_message`, used by ``server.api.events``) get the
same answers as these routes.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from server.api.guards import ANY_ROLE, conference_for
from server.deps import DbDep, FloorDep, PrincipalDep
from server.domain.floor import MAX_LIMIT_SECONDS, MAX_SUBJECT, FloorRefused, FloorService, history_line
from server.domain.tokens import Principal

router = APIRouter(prefix="/api/v1/conferences/{conference_id}/floor", tags=["floor"])


class Holder(BaseModel):
    point_id: str | None = Field(default=None, description="left out for viewers and members")
    point_name: str
    level: str
    subject: str
    granted_at: str
    limit_seconds: int | None
    ends_at: str | None
    muted: bool
    media: Literal["waiting", "live", "stalled"] = Field(
        description="waiting: no stream from the point yet; live; stalled: its packets stopped"
    )


class Quality(BaseModel):
    loss_percent: float | None = None
    rtt_ms: float | None = None
    jitter_ms: float | None = None


class QueueEntry(BaseModel):
    point_id: str
    point_name: str
    level: str
    subject: str
    requested_at: str
    quality: Quality | None = Field(description="the point's link as its own WHEP session reports it, if known")


class FloorStateOut(BaseModel):
    v: int = 1
    locked: bool
    current: Holder | None
    queue: list[QueueEntry] | None = Field(
        description="raised hands in order of request; null for viewers and members"
    )


class RaiseIn(BaseModel):
    subject: str = Field(default="", max_length=MAX_SUBJECT, description="one line: what the point wants to say")


class GrantIn(BaseModel):
    point_id: str = Field(min_length=1, max_length=32)
    limit_seconds: int | None = Field(
        default=None, ge=1, le=MAX_LIMIT_SECONDS, description="the floor ends after this long; null = no limit"
    )


class MuteIn(BaseModel):
    muted: bool


class LockIn(BaseModel):
    locked: bool


class HistoryLine(BaseModel):
    at: str
    kind: Literal["requested", "lowered", "granted", "ended", "muted", "unmuted", "locked", "unlocked"]
    point_id: str | None
    point_name: str
    subject: str
    duration_seconds: float | None = Field(description="how long the point held the floor (ended only)")
    reason: str | None = Field(
        description="ended: chair, returned, time_limit, link_lost, removed or end_all; lowered: chair, "
        "removed or end_all (null: by the point); granted: invited when the point had not asked"
    )


async def _do(work: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    try:
        return await work
    except FloorRefused as exc:
        raise HTTPException(exc.status, exc.detail) from None


@router.get("", response_model=FloorStateOut)
async def floor_state(conference_id: str, db: DbDep, floor: FloorDep, principal: PrincipalDep) -> dict[str, Any]:
    """Who holds the floor and, for the chair and the points, the queue."""
    await conference_for(db, conference_id, principal, *ANY_ROLE)
    return await floor.view(conference_id, principal.role)


@router.post("/requests", response_model=FloorStateOut)
async def raise_hand(
    conference_id: str, body: RaiseIn, db: DbDep, floor: FloorDep, principal: PrincipalDep
) -> dict[str, Any]:
    """A connection point asks for the floor (again: changes its subject, keeps its place).
    409 while the queue is locked."""
    await conference_for(db, conference_id, principal, *ANY_ROLE)
    return await _do(floor.raise_hand(conference_id, principal, body.subject))


@router.delete("/requests/{point_id}", response_model=FloorStateOut)
async def lower_hand(
    conference_id: str, point_id: str, db: DbDep, floor: FloorDep, principal: PrincipalDep
) -> dict[str, Any]:
    """The point itself, or the chair, lowers a raised hand. 404 when the point is not queued."""
    await conference_for(db, conference_id, principal, *ANY_ROLE)
    return await _do(floor.lower_hand(conference_id, principal, point_id))


@router.post("/grant", response_model=FloorStateOut)
async def grant(
    conference_id: str, body: GrantIn, db: DbDep, floor: FloorDep, principal: PrincipalDep
) -> dict[str, Any]:
    """The chair gives a point the floor, queued or not (an invitation); the current holder's
    floor ends first. The point may then publish over WHIP with its own token."""
    await conference_for(db, conference_id, principal, *ANY_ROLE)
    return await _do(floor.grant(conference_id, principal, body.point_id, body.limit_seconds))


@router.post("/end", response_model=FloorStateOut)
async def end(conference_id: str, db: DbDep, floor: FloorDep, principal: PrincipalDep) -> dict[str, Any]:
    """The chair ends the floor, or the point holding it gives it back. 409 when nobody holds it."""
    await conference_for(db, conference_id, principal, *ANY_ROLE)
    return await _do(floor.end(conference_id, principal))


@router.post("/mute", response_model=FloorStateOut)
async def mute(
    conference_id: str, body: MuteIn, db: DbDep, floor: FloorDep, principal: PrincipalDep
) -> dict[str, Any]:
    """The chair mutes (or unmutes) the point holding the floor. 409 when nobody holds it."""
    await conference_for(db, conference_id, principal, *ANY_ROLE)
    return await _do(floor.mute(conference_id, principal, body.muted))


@router.post("/lock", response_model=FloorStateOut)
async def lock(
    conference_id: str, body: LockIn, db: DbDep, floor: FloorDep, principal: PrincipalDep
) -> dict[str, Any]:
    """The chair locks the queue (no new raised hands; those queued stay) or unlocks it."""
    await conference_for(db, conference_id, principal, *ANY_ROLE)
    return await _do(floor.lock(conference_id, principal, body.locked))


@router.post("/end-all", response_model=FloorStateOut)
async def end_all(conference_id: str, db: DbDep, floor: FloorDep, principal: PrincipalDep) -> dict[str, Any]:
    """The chair ends the current floor and clears the queue."""
    await conference_for(db, conference_id, principal, *ANY_ROLE)
    return await _do(floor.end_all(conference_id, principal))


@router.get("/history", response_model=list[HistoryLine])
async def history(
    conference_id: str, db: DbDep, floor: FloorDep, principal: PrincipalDep
) -> list[dict[str, Any]]:
    """Every floor event of the conference, oldest first (chair and organisers)."""
    await conference_for(db, conference_id, principal, "organiser", "speaker")
    return [history_line(e) for e in await floor.history(conference_id)]


# --- the same actions as WebSocket messages -------------------------------------------------------

FLOOR_MESSAGES = ("floor.raise", "floor.lower", "floor.grant", "floor.end", "floor.mute")


async def floor_message(
    floor: FloorService, conference_id: str, principal: Principal, message: dict[str, Any]
) -> dict[str, Any] | None:
    """Act on one ``floor.*`` message from a conference WebSocket (the caller's token belongs to
    the conference). None when accepted (the new ``floor.state`` reaches every socket over the
    bus); else the ``error`` reply saying why, with the status REST would have given."""
    kind = message.get("type")
    try:
        if kind == "floor.raise":
            await floor.raise_hand(conference_id, principal, message.get("subject", ""))
        elif kind == "floor.lower":
            point_id = message.get("point_id", principal.subject_id if principal.role == "point" else None)
            if not isinstance(point_id, str):
                raise FloorRefused(422, "point_id must name the point whose hand to lower")
            await floor.lower_hand(conference_id, principal, point_id)
        elif kind == "floor.grant":
            point_id = message.get("point_id")
            if not isinstance(point_id, str) or not 1 <= len(point_id) <= 32:
                raise FloorRefused(422, "point_id must name the point to give the floor to")
            await floor.grant(conference_id, principal, point_id, message.get("limit_seconds"))
        elif kind == "floor.end":
            await floor.end(conference_id, principal)
        elif kind == "floor.mute":
            muted = message.get("muted")
            if not isinstance(muted, bool):
                raise FloorRefused(422, "muted must be true or false")
            await floor.mute(conference_id, principal, muted)
        else:
            raise FloorRefused(422, f"unknown floor message {kind!r}")
    except FloorRefused as exc:
        return {"v": 1, "type": "error", "for": kind, "status": exc.status, "detail": exc.detail}
    return None
