"""Connection points: the province/district/commune rooms that follow a conference.

Points form a tree by level (a parent is always of a higher level), and names are unique within a
conference so that CSV files can name a parent instead of quoting an id.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import ConnectionPoint, new_id, utcnow
from server.domain.csvio import ImportErrors, RowError, decode, read_rows
from server.domain.rows import conference_row
from server.domain.tokens import revoke_subject

LEVELS = ("province", "district", "commune")
LEVEL_RANK = {level: rank for rank, level in enumerate(LEVELS)}
LEVEL_ALIASES = {
    "province": "province", "tinh": "province", "tỉnh": "province", "thành phố": "province",
    "district": "district", "huyen": "district", "huyện": "district", "quận": "district",
    "commune": "commune", "xa": "commune", "xã": "commune", "phường": "commune",
    "thị trấn": "commune", "ward": "commune",
}
MAX_SUMMONED = 1_000_000
MAX_IMPORT_ROWS = 20_000


class PointError(ValueError):
    """A point that cannot be created or changed as asked."""


class PointNotFound(LookupError):
    pass


def normalise_level(value: str) -> str | None:
    return LEVEL_ALIASES.get(value.strip().lower())


def check_parent(level: str, parent: ConnectionPoint | None) -> None:
    if parent is None:
        return
    if LEVEL_RANK[parent.level] >= LEVEL_RANK[level]:
        raise PointError(f"a {level} cannot belong to a {parent.level} ('{parent.name}')")


async def list_points(db: AsyncSession, conference_id: str) -> list[ConnectionPoint]:
    rows = await db.execute(
        select(ConnectionPoint)
        .where(ConnectionPoint.conference_id == conference_id)
        .order_by(ConnectionPoint.created_at, ConnectionPoint.name)
    )
    points = list(rows.scalars())
    points.sort(key=lambda p: LEVEL_RANK.get(p.level, 9))
    return points


async def get_point(db: AsyncSession, conference_id: str, point_id: str) -> ConnectionPoint:
    return await conference_row(db, ConnectionPoint, point_id, conference_id, PointNotFound)


async def find_by_name(db: AsyncSession, conference_id: str, name: str) -> ConnectionPoint | None:
    return (
        await db.execute(
            select(ConnectionPoint).where(
                ConnectionPoint.conference_id == conference_id, ConnectionPoint.name == name
            )
        )
    ).scalar_one_or_none()


async def count_points(db: AsyncSession, conference_id: str) -> int:
    return (
        await db.execute(
            select(func.count()).select_from(ConnectionPoint).where(
                ConnectionPoint.conference_id == conference_id
            )
        )
    ).scalar_one()


async def create_point(
    db: AsyncSession,
    conference_id: str,
    name: str,
    level: str,
    parent_id: str | None = None,
    operator_name: str = "",
    summoned: int = 0,
) -> ConnectionPoint:
    name = name.strip()
    canonical = normalise_level(level)
    if not name:
        raise PointError("name must not be empty")
    if canonical is None:
        raise PointError(f"level must be one of {', '.join(LEVELS)}, not '{level}'")
    if not 0 <= summoned <= MAX_SUMMONED:
        raise PointError(f"summoned must be between 0 and {MAX_SUMMONED}")
    if await find_by_name(db, conference_id, name):
        raise PointError(f"a point named '{name}' already exists in this conference")
    parent = await get_point(db, conference_id, parent_id) if parent_id else None
    check_parent(canonical, parent)
    point = ConnectionPoint(
        conference_id=conference_id,
        name=name,
        level=canonical,
        parent_id=parent.id if parent else None,
        operator_name=operator_name.strip(),
        summoned=summoned,
    )
    db.add(point)
    await db.flush()
    return point


async def update_point(
    db: AsyncSession, conference_id: str, point_id: str, changes: dict
) -> ConnectionPoint:
    point = await get_point(db, conference_id, point_id)
    if "name" in changes:
        name = (changes["name"] or "").strip()
        if not name:
            raise PointError("name must not be empty")
        other = await find_by_name(db, conference_id, name)
        if other is not None and other.id != point.id:
            raise PointError(f"a point named '{name}' already exists in this conference")
        point.name = name
    if "level" in changes:
        level = normalise_level(changes["level"] or "")
        if level is None:
            raise PointError(f"level must be one of {', '.join(LEVELS)}")
        point.level = level
    if "parent_id" in changes:
        point.parent_id = changes["parent_id"] or None
    if point.parent_id:
        if point.parent_id == point.id:
            raise PointError("a point cannot be its own parent")
        check_parent(point.level, await get_point(db, conference_id, point.parent_id))
    if "operator_name" in changes:
        point.operator_name = (changes["operator_name"] or "").strip()
    if "summoned" in changes:
        summoned = int(changes["summoned"])
        if not 0 <= summoned <= MAX_SUMMONED:
            raise PointError(f"summoned must be between 0 and {MAX_SUMMONED}")
        point.summoned = summoned
    await db.flush()
    return point


async def delete_point(db: AsyncSession, conference_id: str, point_id: str) -> None:
    point = await get_point(db, conference_id, point_id)
    await db.delete(point)
    # Its links stop working (and its open sessions close at the next token check).
    await revoke_subject(db, conference_id, "point", point_id)
    await db.flush()


@dataclass
class ImportResult:
    created: list[ConnectionPoint]
    updated: list[ConnectionPoint]


async def import_csv(
    db: AsyncSession, conference_id: str, data: bytes, update_existing: bool = False
) -> ImportResult:
    """Create (or with ``update_existing`` also update) points from CSV ``name, level, parent, summoned``.

    All rows are validated before anything is written, so a file with one bad row changes nothing
    and the caller gets every problem with its row number at once.
    """
    rows = read_rows(
        decode(data),
        required=("name", "level"),
        optional=("parent", "summoned", "operator"),
        aliases={
            "tên": "name", "cấp": "level", "parent_name": "parent", "cấp trên": "parent",
            "operator_name": "operator", "số đại biểu": "summoned", "delegates": "summoned",
        },
    )
    if len(rows) > MAX_IMPORT_ROWS:
        raise ImportErrors(f"too many rows ({len(rows)}); at most {MAX_IMPORT_ROWS} per file")
    existing = {p.name: p for p in await list_points(db, conference_id)}
    errors: list[RowError] = []
    parsed: list[tuple[int, str, str, str, int | None, str | None]] = []
    seen: dict[str, int] = {}
    declared: dict[str, str] = {}
    for row_number, rec in rows:
        name = rec.get("name", "")
        level = normalise_level(rec.get("level", ""))
        summoned_text = rec.get("summoned", "").replace(".", "").replace(",", "").replace(" ", "")
        problems = []
        if not name:
            problems.append("name is empty")
        elif len(name) > 200:
            problems.append("name is longer than 200 characters")
        elif name in seen:
            problems.append(f"duplicate name '{name}' (also on row {seen[name]})")
        elif name in existing and not update_existing:
            problems.append(f"a point named '{name}' already exists in this conference")
        if level is None:
            problems.append(
                f"level '{rec.get('level', '')}' is not one of {', '.join(LEVELS)}"
            )
        summoned: int | None = None
        if summoned_text:
            # isdecimal, not isdigit: int() refuses "²" and "፩", which isdigit() accepts
            if summoned_text.isdecimal() and int(summoned_text) <= MAX_SUMMONED:
                summoned = int(summoned_text)
            else:
                problems.append(
                    f"summoned '{rec.get('summoned')}' is not a whole number between 0 and {MAX_SUMMONED}"
                )
        if name:
            seen.setdefault(name, row_number)
            if level and name not in declared:
                declared[name] = level  # known even when the row has other problems
        if problems:
            errors.extend(RowError(row_number, p) for p in problems)
            continue
        parsed.append(
            (row_number, name, level or "", rec.get("parent", ""), summoned, rec.get("operator"))
        )

    levels = dict(declared)
    for name, point in existing.items():
        levels.setdefault(name, point.level)
    for row_number, name, level, parent, *_ in parsed:
        if not parent:
            continue
        if parent == name:
            errors.append(RowError(row_number, "a point cannot be its own parent"))
        elif parent not in levels:
            errors.append(RowError(row_number, f"parent '{parent}' is not in the file or the conference"))
        elif LEVEL_RANK[levels[parent]] >= LEVEL_RANK[level]:
            errors.append(
                RowError(row_number, f"a {level} cannot belong to the {levels[parent]} '{parent}'")
            )
    if errors:
        errors.sort(key=lambda e: e.row)
        raise ImportErrors(f"{len(errors)} problem(s) in the file; nothing was imported", errors)

    created: list[ConnectionPoint] = []
    updated: list[ConnectionPoint] = []
    by_name = dict(existing)
    # Ids are assigned up front and parents inserted before children, so one flush suffices even
    # with foreign keys enforced row by row.
    start = utcnow()
    for _, name, level, _, summoned, operator in sorted(parsed, key=lambda r: LEVEL_RANK[r[2]]):
        point = by_name.get(name)
        if point is None:
            point = ConnectionPoint(
                id=new_id(),
                conference_id=conference_id,
                name=name,
                level=level,
                summoned=summoned or 0,
                operator_name=operator or "",
                created_at=start + dt.timedelta(microseconds=len(created)),  # keeps file order
            )
            by_name[name] = point
            created.append(point)
        else:
            point.level = level
            if summoned is not None:
                point.summoned = summoned
            if operator is not None:
                point.operator_name = operator
            updated.append(point)
    for _, name, _, parent, *_ in parsed:
        by_name[name].parent_id = by_name[parent].id if parent else None
    db.add_all(created)
    await db.flush()
    return ImportResult(created, updated)
