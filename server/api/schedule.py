"""Conference schedule, status and agenda (organiser API)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException
from pydantic import BaseModel, Field

from server.api.conferences import ScheduleOut
from server.api.guards import ANY_ROLE, conference_for
from server.deps import BusDep, DbDep, PrincipalDep
from server.domain import schedule as domain
from server.domain.conferences import ENDED, STATUSES
from server.events.bus import conference_topic

router = APIRouter(prefix="/api/v1/conferences", tags=["conferences"])

MAX_AGENDA_ITEMS = 200


class ConferencePatch(BaseModel):
    title: str | None = Field(default=None, min_length=1, max_length=500)
    description: str | None = Field(default=None, max_length=20_000)
    scheduled_start: dt.datetime | None = None
    scheduled_end: dt.datetime | None = None
    status: str | None = Field(default=None, max_length=16, description="one of: " + ", ".join(STATUSES))


class AgendaItemIn(BaseModel):
    title: str = Field(min_length=1, max_length=500)
    speaker: str = Field(default="", max_length=200)
    starts_at: dt.datetime | None = None
    duration_minutes: int | None = Field(default=None, ge=0, le=24 * 60)
    notes: str = Field(default="", max_length=10_000)


class AgendaItemOut(AgendaItemIn):
    id: str
    position: int


def _agenda_out(item) -> AgendaItemOut:  # type: ignore[no-untyped-def]
    return AgendaItemOut(
        id=item.id,
        position=item.position,
        title=item.title,
        speaker=item.speaker,
        starts_at=item.starts_at,
        duration_minutes=item.duration_minutes,
        notes=item.notes,
    )


@router.patch("/{conference_id}", response_model=ScheduleOut)
async def update_conference(
    conference_id: str,
    body: ConferencePatch,
    db: DbDep,
    bus: BusDep,
    principal: PrincipalDep,
) -> ScheduleOut:
    """Change title, description, schedule or status (scheduled, live, ended); times are stored in UTC."""
    was = (await conference_for(db, conference_id, principal, "organiser")).status
    changes = body.model_dump(exclude_unset=True)
    if changes.get("title", "") is None:
        raise HTTPException(422, "title may not be null")
    try:
        conf = await domain.update_conference(db, conference_id, changes)
    except domain.ScheduleError as exc:
        raise HTTPException(422, str(exc))
    out = ScheduleOut(
        id=conf.id,
        title=conf.title,
        description=conf.description,
        scheduled_start=domain.as_utc(conf.scheduled_start),
        scheduled_end=domain.as_utc(conf.scheduled_end),
        status=conf.status,
    )
    await db.commit()
    await bus.publish(
        conference_topic(conference_id), {"type": "conference.updated", **out.model_dump(mode="json")}
    )
    if conf.status == "ended" and was != "ended":  # sessions close, the recording is finalised
        await bus.publish(
            conference_topic(conference_id), {"type": ENDED, "conference_id": conference_id}
        )
    return out


@router.get("/{conference_id}/agenda", response_model=list[AgendaItemOut])
async def get_agenda(
    conference_id: str,
    db: DbDep,
    principal: PrincipalDep,
) -> list[AgendaItemOut]:
    await conference_for(db, conference_id, principal, *ANY_ROLE)
    return [_agenda_out(i) for i in await domain.list_agenda(db, conference_id)]


@router.put("/{conference_id}/agenda", response_model=list[AgendaItemOut])
async def replace_agenda(
    conference_id: str,
    db: DbDep,
    principal: PrincipalDep,
    body: Annotated[list[AgendaItemIn], Body(max_length=MAX_AGENDA_ITEMS)],
) -> list[AgendaItemOut]:
    """Replace the whole agenda; the list order is the display order."""
    await conference_for(db, conference_id, principal, "organiser")
    items = await domain.replace_agenda(db, conference_id, [i.model_dump() for i in body])
    return [_agenda_out(i) for i in items]


@router.post("/{conference_id}/agenda", status_code=201, response_model=AgendaItemOut)
async def add_agenda_item(
    conference_id: str,
    body: AgendaItemIn,
    db: DbDep,
    principal: PrincipalDep,
) -> AgendaItemOut:
    await conference_for(db, conference_id, principal, "organiser")
    return _agenda_out(await domain.add_agenda_item(db, conference_id, body.model_dump()))


@router.delete("/{conference_id}/agenda/{item_id}", status_code=204)
async def delete_agenda_item(
    conference_id: str,
    item_id: str,
    db: DbDep,
    principal: PrincipalDep,
) -> None:
    await conference_for(db, conference_id, principal, "organiser")
    if not await domain.delete_agenda_item(db, conference_id, item_id):
        raise HTTPException(404, f"unknown agenda item '{item_id}'")
