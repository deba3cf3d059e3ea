"""Removing a participant from a conference: every token of that point or member stops working.

A participant is named by its point, its member record or one of its tokens; a token of a point
or a member stands for all of that subject's tokens (an operator could otherwise come back with a
second link). The caller commits and then wakes the token watch, which closes the participant's
WHIP/WHEP sessions and WebSockets at once; the floor side (losing the floor, leaving the queue)
is :meth:`server.domain.floor.FloorService.remove_point`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import AccessToken
from server.domain.members import get_member
from server.domain.points import get_point
from server.domain.tokens import get_token, revoke_token


class OrganiserRemoval(PermissionError):
    """Only the admin may remove an organiser (as only the admin revokes organiser tokens)."""


@dataclass
class Removal:
    """Who was removed (``role``: point, member or the token's role) and the tokens revoked now."""

    role: str
    subject_id: str | None
    name: str
    token_ids: list[str] = field(default_factory=list)


async def _revoke_subject(db: AsyncSession, conference_id: str, role: str, subject_id: str) -> list[str]:
    rows = (
        await db.execute(
            select(AccessToken).where(
                AccessToken.conference_id == conference_id,
                AccessToken.role == role,
                AccessToken.subject_id == subject_id,
                AccessToken.revoked == 0,
            )
        )
    ).scalars()
    revoked = []
    for row in rows:
        await revoke_token(db, row)
        revoked.append(row.id)
    return revoked


async def remove_point(db: AsyncSession, conference_id: str, point_id: str) -> Removal:
    """Revoke every operator token of a point (raises PointNotFound for an unknown one)."""
    point = await get_point(db, conference_id, point_id)
    return Removal("point", point.id, point.name, await _revoke_subject(db, conference_id, "point", point.id))


async def remove_member(db: AsyncSession, conference_id: str, member_id: str) -> Removal:
    """Revoke every token of a member (raises MemberNotFound for an unknown one)."""
    member = await get_member(db, conference_id, member_id)
    return Removal("member", member.id, member.name, await _revoke_subject(db, conference_id, "member", member.id))


async def remove_token_holder(db: AsyncSession, conference_id: str, token_id: str, by_admin: bool) -> Removal:
    """Revoke a token, and with it every token of its point or member (raises TokenNotFound)."""
    row = await get_token(db, conference_id, token_id)
    if row.role == "organiser" and not by_admin:
        raise OrganiserRemoval("only the admin may remove an organiser")
    if row.role in ("point", "member") and row.subject_id:
        revoked = await _revoke_subject(db, conference_id, row.role, row.subject_id)
        return Removal(row.role, row.subject_id, row.name, revoked)
    revoked = [] if row.revoked else [row.id]
    await revoke_token(db, row)
    return Removal(row.role, None, row.name, revoked)
