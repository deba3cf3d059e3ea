"""The webhook delivery log (REST): what was sent to which receiver, and how each attempt went.

The admin reads every conference's deliveries; an organiser reads its own conference's. Receiver
URLs may carry a credential in their path or query (many services put it there), so organisers
see only the receiver's scheme, host and port; the admin, who configured them, the whole URL.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from server.api.guards import conference_for
from server.api.paging import MAX_OFFSET
from server.db.models import WebhookAttempt, WebhookDelivery
from server.deps import DbDep, PrincipalDep
from server.domain import webhooks_log as delivery_log
from server.domain.webhooks import EVENT_TYPES

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])

Status = Literal["pending", "retrying", "delivered", "failed"]
EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]


class AttemptOut(BaseModel):
    number: int = Field(description="1 for the first POST, then each retry")
    started_at: dt.datetime
    duration_ms: float
    status_code: int | None = Field(description="the receiver's HTTP status; null when it did not answer")
    error: str | None = Field(description="why there was no answer (timeout, refused connection...)")


class DeliveryOut(BaseModel):
    id: str = Field(description="also sent as X-Diemcau-Delivery")
    event_id: str = Field(description="the event's id (the same for every receiver), the body's 'id'")
    event_type: str
    conference_id: str
    url: str = Field(description="the receiver; for organisers only its scheme, host and port")
    status: Status
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    delivered_at: dt.datetime | None
    next_attempt_at: dt.datetime | None = Field(description="when a retrying delivery is tried again")
    payload: dict[str, Any] = Field(description="the JSON body as signed and sent")
    attempt_log: list[AttemptOut]


def receiver_of(url: str) -> str:
    """``https://hooks.example.org:8443/…``: the URL without its path, query or credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"


def delivery_out(row: WebhookDelivery, attempts: list[WebhookAttempt], full_url: bool) -> DeliveryOut:
    return DeliveryOut(
        id=row.id, event_id=row.event_id, event_type=row.event_type, conference_id=row.conference_id,
        url=row.url if full_url else receiver_of(row.url), status=row.status,  # type: ignore[arg-type]
        attempts=row.attempts, last_status_code=row.last_status_code, last_error=row.last_error,
        created_at=row.created_at, updated_at=row.updated_at, delivered_at=row.delivered_at,
        next_attempt_at=row.next_attempt_at, payload=json.loads(row.body),
        attempt_log=[AttemptOut(number=a.number, started_at=a.started_at, duration_ms=a.duration_ms,
                                status_code=a.status_code, error=a.error) for a in attempts],
    )


@router.get("/deliveries", response_model=list[DeliveryOut])
async def list_deliveries(
    db: DbDep,
    principal: PrincipalDep,
    conference_id: str | None = Query(default=None, max_length=32,
                                      description="only this conference's; an organiser's own by default"),
    status: Status | None = Query(default=None),
    event_type: EventType | None = Query(default=None),  # type: ignore[valid-type]
    limit: int = Query(100, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> list[DeliveryOut]:
    """Newest first, each with its attempts. Admin: every conference unless one is named;
    organiser: its own conference."""
    if not principal.is_admin:
        if principal.role != "organiser":
            raise HTTPException(403, f"role '{principal.role}' may not do this (needs: organiser)")
        conference_id = conference_id or principal.conference_id
    if conference_id is not None:
        await conference_for(db, conference_id, principal, "organiser")
    rows = await delivery_log.deliveries(db, conference_id, status, event_type, limit, offset)
    return [delivery_out(row, attempts, principal.is_admin) for row, attempts in rows]
