"""The webhook delivery log in the database: a row per event and receiver, a row per attempt.

The log is also the sender's memory: deliveries still ``pending`` or ``retrying`` when the server
stopped are taken up again at the next start (server.domain.webhooks_sender).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import WebhookAttempt, WebhookDelivery, utcnow
from server.domain.webhooks import WebhookEvent

STATUSES = ("pending", "retrying", "delivered", "failed")
UNFINISHED = ("pending", "retrying")
MAX_ERROR = 500


@dataclass(frozen=True)
class Outcome:
    """One POST's result: the receiver's status code, or the error that kept it from answering."""

    started_at: dt.datetime
    duration_ms: float
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds, from a 429/503's Retry-After

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retriable(self) -> bool:
        """No answer, a server error, 408 or 429: worth trying again. Another 4xx (or a redirect)
        will be the same next time."""
        return self.status_code is None or self.status_code >= 500 or self.status_code in (408, 429)


def record_event(db: AsyncSession, event: WebhookEvent, urls: Sequence[str]) -> list[WebhookDelivery]:
    """A pending delivery of ``event`` to each receiver (added to ``db``; the caller commits)."""
    body = event.body().decode()
    rows = [
        WebhookDelivery(event_id=event.id, event_type=event.type, conference_id=event.conference_id, url=url,
                        body=body, status="pending", attempts=0, created_at=event.occurred_at,
                        updated_at=event.occurred_at)
        for url in urls
    ]
    db.add_all(rows)
    return rows


async def record_attempt(db: AsyncSession, delivery_id: str, number: int, outcome: Outcome,
                         next_attempt_at: dt.datetime | None) -> None:
    """The attempt, and the delivery's new state: delivered, retrying (at ``next_attempt_at``) or failed."""
    db.add(WebhookAttempt(delivery_id=delivery_id, number=number, started_at=outcome.started_at,
                          duration_ms=round(outcome.duration_ms, 1), status_code=outcome.status_code,
                          error=outcome.error[:MAX_ERROR] if outcome.error else None))
    row = await db.get(WebhookDelivery, delivery_id)
    if row is None:  # its conference was deleted meanwhile
        return
    now = utcnow()
    row.attempts = number
    row.last_status_code = outcome.status_code
    row.last_error = outcome.error[:MAX_ERROR] if outcome.error else None
    row.updated_at = now
    row.next_attempt_at = next_attempt_at
    if outcome.ok:
        row.status, row.delivered_at = "delivered", now
    else:
        row.status = "retrying" if next_attempt_at is not None else "failed"


async def unfinished(db: AsyncSession) -> list[WebhookDelivery]:
    """Deliveries to take up again, oldest first."""
    query = select(WebhookDelivery).where(WebhookDelivery.status.in_(UNFINISHED))
    return list((await db.execute(query.order_by(WebhookDelivery.created_at, WebhookDelivery.id))).scalars())


async def deliveries(
    db: AsyncSession, conference_id: str | None, status: str | None = None, event_type: str | None = None,
    limit: int = 100, offset: int = 0,
) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
    """Newest first, each with its attempts in order."""
    query = select(WebhookDelivery)
    if conference_id is not None:
        query = query.where(WebhookDelivery.conference_id == conference_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    if event_type is not None:
        query = query.where(WebhookDelivery.event_type == event_type)
    query = query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id).limit(limit).offset(offset)
    rows = list((await db.execute(query)).scalars())
    attempts: dict[str, list[WebhookAttempt]] = {r.id: [] for r in rows}
    if rows:
        found = await db.execute(
            select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(list(attempts)))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number)
        )
        for attempt in found.scalars():
            attempts[attempt.delivery_id].append(attempt)
    return [(r, attempts[r.id]) for r in rows]


async def prune(db: AsyncSession, older_than: dt.datetime) -> int:
    """Delete finished deliveries (and their attempts) created before ``older_than``."""
    old = select(WebhookDelivery.id).where(
        WebhookDelivery.created_at < older_than, WebhookDelivery.status.not_in(UNFINISHED)
    )
    await db.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(old)))
    result = await db.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(old)))
    return result.rowcount or 0  # type: ignore[attr-defined]
