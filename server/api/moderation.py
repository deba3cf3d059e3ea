"""Moderation (organiser): remove a participant from the conference at once."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field, model_validator

from server.api.guards import conference_for, or_404
from server.deps import DbDep, FloorDep, PrincipalDep, TokenWatchDep
from server.domain import moderation
from server.domain.members import MemberNotFound
from server.domain.points import PointNotFound
from server.domain.tokens import TokenNotFound

router = APIRouter(prefix="/api/v1/conferences/{conference_id}/moderation", tags=["moderation"])


class RemoveIn(BaseModel):
    """Exactly one of the three names the participant."""

    point_id: str | None = Field(default=None, min_length=1, max_length=32)
    member_id: str | None = Field(default=None, min_length=1, max_length=32)
    token_id: str | None = Field(default=None, min_length=1, max_length=32)

    @model_validator(mode="after")
    def _exactly_one(self) -> RemoveIn:
        if sum(v is not None for v in (self.point_id, self.member_id, self.token_id)) != 1:
            raise ValueError("give exactly one of point_id, member_id, token_id")
        return self


class RemoveOut(BaseModel):
    role: str
    subject_id: str | None
    name: str
    revoked_token_ids: list[str] = Field(description="tokens revoked now (those revoked before are left out)")
    floor_ended: bool = Field(description="the point held the floor, which ended (reason removed)")
    lowered: bool = Field(description="the point's raised hand was taken out of the queue")


@router.post("/remove", response_model=RemoveOut)
async def remove(
    conference_id: str,
    body: RemoveIn,
    db: DbDep,
    floor: FloorDep,
    token_watch: TokenWatchDep,
    principal: PrincipalDep,
) -> RemoveOut:
    """Every token of the participant in this conference stops working at once; its WHIP/WHEP
    sessions and WebSockets close; a point loses the floor and its place in the queue."""
    await conference_for(db, conference_id, principal, "organiser")
    if body.point_id is not None:
        work = moderation.remove_point(db, conference_id, body.point_id)
        removal = await or_404(work, PointNotFound, f"unknown point '{body.point_id}'")
    elif body.member_id is not None:
        work = moderation.remove_member(db, conference_id, body.member_id)
        removal = await or_404(work, MemberNotFound, f"unknown member '{body.member_id}'")
    else:
        assert body.token_id is not None
        work = moderation.remove_token_holder(db, conference_id, body.token_id, principal.is_admin)
        try:
            removal = await or_404(work, TokenNotFound, f"unknown token '{body.token_id}' in this conference")
        except moderation.OrganiserRemoval as exc:
            raise HTTPException(403, str(exc)) from None
    await db.commit()  # before the sweep looks, so it sees the revocations
    token_watch.poke()
    ended = lowered = False
    if removal.role == "point" and removal.subject_id:
        ended, lowered = await floor.remove_point(conference_id, removal.subject_id, principal)
    return RemoveOut(
        role=removal.role,
        subject_id=removal.subject_id,
        name=removal.name,
        revoked_token_ids=removal.token_ids,
        floor_ended=ended,
        lowered=lowered,
    )
