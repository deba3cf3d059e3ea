"""A conference's schedule, status and agenda, as the organiser edits them.

Times are normalised to UTC before storing: SQLite keeps no UTC offset, so a ``+07:00`` time
stored as-is would later read back seven hours off.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import AgendaItem, Conference
from server.domain.conferences import STATUSES, as_utc, get_conference
from server.domain.rows import delete_owned_row


class ScheduleError(ValueError):
    pass


async def update_conference(db: AsyncSession, conference_id: str, changes: dict) -> Conference:
    """Apply a partial update of title, description, scheduled_start/end and status."""
    conf = await get_conference(db, conference_id)
    if "title" in changes:
        title = (changes["title"] or "").strip()
        if not title:
            raise ScheduleError("title must not be empty")
        conf.title = title
    if "description" in changes:
        conf.description = changes["description"] or ""
    if "scheduled_start" in changes:
        conf.scheduled_start = as_utc(changes["scheduled_start"])
    if "scheduled_end" in changes:
        conf.scheduled_end = as_utc(changes["scheduled_end"])
    start, end = as_utc(conf.scheduled_start), as_utc(conf.scheduled_end)
    if start and end and end <= start:
        raise ScheduleError("scheduled_end must be after scheduled_start")
    if "status" in changes:
        if changes["status"] not in STATUSES:
            raise ScheduleError(f"status must be one of {', '.join(STATUSES)}")
        conf.status = changes["status"]
    await db.flush()
    return conf


async def list_agenda(db: AsyncSession, conference_id: str) -> list[AgendaItem]:
    rows = await db.execute(
        select(AgendaItem)
        .where(AgendaItem.conference_id == conference_id)
        .order_by(AgendaItem.position, AgendaItem.starts_at)
    )
    return list(rows.scalars())


async def replace_agenda(db: AsyncSession, conference_id: str, items: list[dict]) -> list[AgendaItem]:
    """Replace the whole agenda; list order becomes the display order."""
    await get_conference(db, conference_id)
    await db.execute(delete(AgendaItem).where(AgendaItem.conference_id == conference_id))
    rows = [
        AgendaItem(
            conference_id=conference_id,
            position=index,
            title=item["title"],
            speaker=item.get("speaker") or "",
            starts_at=as_utc(item.get("starts_at")),
            duration_minutes=item.get("duration_minutes"),
            notes=item.get("notes") or "",
        )
        for index, item in enumerate(items)
    ]
    db.add_all(rows)
    await db.flush()
    return rows


async def add_agenda_item(db: AsyncSession, conference_id: str, item: dict) -> AgendaItem:
    existing = await list_agenda(db, conference_id)
    row = AgendaItem(
        conference_id=conference_id,
        position=(existing[-1].position + 1) if existing else 0,
        title=item["title"],
        speaker=item.get("speaker") or "",
        starts_at=as_utc(item.get("starts_at")),
        duration_minutes=item.get("duration_minutes"),
        notes=item.get("notes") or "",
    )
    db.add(row)
    await db.flush()
    return row


async def delete_agenda_item(db: AsyncSession, conference_id: str, item_id: str) -> bool:
    return await delete_owned_row(db, AgendaItem, item_id, conference_id=conference_id)
