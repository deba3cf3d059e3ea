"""Conference lifecycle: created scheduled, goes live with the first publisher, ends on demand."""

from __future__ import annotations

import datetime as dt

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import Conference

STATUSES = ("scheduled", "live", "ended")
ENDED = "conference.ended"  # bus event: every node closes the conference's sessions, the recorder stops

log = logging.getLogger(__name__)


class ConferenceNotFound(LookupError):
    pass


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """Aware UTC datetime; naive values (as SQLite returns them) are taken to be UTC already."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


async def create_conference(
    db: AsyncSession,
    title: str,
    description: str = "",
    scheduled_start: dt.datetime | None = None,
    scheduled_end: dt.datetime | None = None,
) -> Conference:
    conf = Conference(
        title=title,
        description=description,
        scheduled_start=as_utc(scheduled_start),
        scheduled_end=as_utc(scheduled_end),
    )
    db.add(conf)
    await db.flush()
    return conf


async def get_conference(db: AsyncSession, conference_id: str) -> Conference:
    conf = await db.get(Conference, conference_id)
    if conf is None:
        raise ConferenceNotFound(conference_id)
    return conf


async def list_conferences(db: AsyncSession) -> list[Conference]:
    return list((await db.execute(select(Conference).order_by(Conference.created_at))).scalars())


async def set_status(db: AsyncSession, conference_id: str, status: str) -> None:
    if status not in STATUSES:
        raise ValueError(status)
    conf = await get_conference(db, conference_id)
    conf.status = status


async def close_sessions(media: Any, conference_id: str) -> int:
    """Close this node's WHIP and WHEP sessions of a conference; how many there were."""
    sessions = [
        s for s in [*media.producers.values(), *media.consumers.values()] if s.conference_id == conference_id
    ]
    for session in sessions:
        try:
            await session.close()
        except Exception:
            log.exception("closing session %s of ended conference %s failed", session.id, conference_id)
    return len(sessions)


def ended_conference_closer(media: Any) -> Callable[[dict[str, Any]], None]:
    """A bus handler: on ``conference.ended`` (from any node) close this node's sessions of it."""

    def on_event(event: dict[str, Any]) -> None:
        if event.get("type") == ENDED and event.get("conference_id"):
            asyncio.ensure_future(close_sessions(media, str(event["conference_id"])))

    return on_event
