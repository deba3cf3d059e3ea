"""Members: people expected to follow a conference, at a connection point or on their own."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import ConnectionPoint, Member, new_id, utcnow
from server.domain.csvio import ImportErrors, RowError, decode, read_rows
from server.domain.rows import conference_row, owned_row
from server.domain.tokens import revoke_subject

MAX_IMPORT_ROWS = 100_000


class MemberError(ValueError):
    pass


class MemberNotFound(LookupError):
    pass


async def _point_id(db: AsyncSession, conference_id: str, point_id: str | None) -> str | None:
    if not point_id:
        return None
    point = await owned_row(db, ConnectionPoint, point_id, conference_id=conference_id)
    if point is None:
        raise MemberError(f"unknown connection point '{point_id}'")
    return point.id


async def create_member(
    db: AsyncSession, conference_id: str, name: str, unit: str = "", point_id: str | None = None
) -> Member:
    name = name.strip()
    if not name:
        raise MemberError("name must not be empty")
    member = Member(
        conference_id=conference_id,
        name=name,
        unit=unit.strip(),
        point_id=await _point_id(db, conference_id, point_id),
    )
    db.add(member)
    await db.flush()
    return member


async def get_member(db: AsyncSession, conference_id: str, member_id: str) -> Member:
    return await conference_row(db, Member, member_id, conference_id, MemberNotFound)


async def list_members(
    db: AsyncSession, conference_id: str, offset: int = 0, limit: int | None = None
) -> list[Member]:
    query = (
        select(Member)
        .where(Member.conference_id == conference_id)
        .order_by(Member.created_at, Member.id)
        .offset(offset)
    )
    if limit is not None:
        query = query.limit(limit)
    return list((await db.execute(query)).scalars())


async def count_members(db: AsyncSession, conference_id: str) -> int:
    return (
        await db.execute(
            select(func.count()).select_from(Member).where(Member.conference_id == conference_id)
        )
    ).scalar_one()


async def update_member(db: AsyncSession, conference_id: str, member_id: str, changes: dict) -> Member:
    member = await get_member(db, conference_id, member_id)
    if "name" in changes:
        name = (changes["name"] or "").strip()
        if not name:
            raise MemberError("name must not be empty")
        member.name = name
    if "unit" in changes:
        member.unit = (changes["unit"] or "").strip()
    if "point_id" in changes:
        member.point_id = await _point_id(db, conference_id, changes["point_id"])
    await db.flush()
    return member


async def delete_member(db: AsyncSession, conference_id: str, member_id: str) -> None:
    await db.delete(await get_member(db, conference_id, member_id))
    # Its links stop working (and its open sessions close at the next token check).
    await revoke_subject(db, conference_id, "member", member_id)
    await db.flush()


async def import_csv(db: AsyncSession, conference_id: str, data: bytes) -> list[Member]:
    """Add members from CSV ``name, unit, point`` (point by name, empty = watches individually).

    All-or-nothing, like the point import: every bad row is reported with its row number.
    """
    rows = read_rows(
        decode(data),
        required=("name",),
        optional=("unit", "point"),
        aliases={"tên": "name", "họ và tên": "name", "đơn vị": "unit", "điểm cầu": "point"},
    )
    if len(rows) > MAX_IMPORT_ROWS:
        raise ImportErrors(f"too many rows ({len(rows)}); at most {MAX_IMPORT_ROWS} per file")
    result = await db.execute(
        select(ConnectionPoint.name, ConnectionPoint.id).where(ConnectionPoint.conference_id == conference_id)
    )
    points = {name: point_id for name, point_id in result}
    errors: list[RowError] = []
    members: list[Member] = []
    start = utcnow()
    for row_number, rec in rows:
        name, point = rec.get("name", ""), rec.get("point", "")
        if not name:
            errors.append(RowError(row_number, "name is empty"))
        elif len(name) > 200:
            errors.append(RowError(row_number, "name is longer than 200 characters"))
        if point and point not in points:
            errors.append(RowError(row_number, f"connection point '{point}' does not exist"))
        members.append(
            Member(
                id=new_id(),
                conference_id=conference_id,
                name=name,
                unit=rec.get("unit", "")[:200],
                point_id=points.get(point) if point else None,
                created_at=start + dt.timedelta(microseconds=len(members)),  # keeps file order
            )
        )
    if errors:
        raise ImportErrors(f"{len(errors)} problem(s) in the file; nothing was imported", errors)
    db.add_all(members)
    await db.flush()
    return members
