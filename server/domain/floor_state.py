"""A conference's floor as it is now: the holder, the queue of raised hands, the lock.

Plain data, shaped as the API and the WebSocket show it (``FloorState`` of the contract), and what
each role may see of it: the chair and the points see the queue, viewers and members only who is
speaking (without the point's id, which nobody but organisers and points needs).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

VERSION = 1
MEDIA_STATES = ("waiting", "live", "stalled")
QUEUE_ROLES = ("admin", "organiser", "speaker", "point")  # who sees the queue
CHAIR_ROLES = ("admin", "organiser", "speaker")
END_REASONS = ("chair", "returned", "time_limit", "link_lost", "removed", "end_all")


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass
class Holder:
    """The point holding the floor. ``media``: "waiting" until its WHIP stream is live, "stalled"
    while its packets stop; ``session_id``: its live WHIP session, as the media plane reported it."""

    grant_id: str
    point_id: str
    point_name: str
    level: str
    subject: str
    granted_at: dt.datetime
    limit_seconds: int | None = None
    ends_at: dt.datetime | None = None
    muted: bool = False
    media: str = "waiting"
    session_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "point_id": self.point_id,
            "point_name": self.point_name,
            "level": self.level,
            "subject": self.subject,
            "granted_at": iso(self.granted_at),
            "limit_seconds": self.limit_seconds,
            "ends_at": iso(self.ends_at),
            "muted": self.muted,
            "media": self.media,
        }


@dataclass
class QueueEntry:
    point_id: str
    point_name: str
    level: str
    subject: str
    requested_at: dt.datetime

    def as_dict(self, quality: dict[str, float] | None) -> dict[str, Any]:
        return {
            "point_id": self.point_id,
            "point_name": self.point_name,
            "level": self.level,
            "subject": self.subject,
            "requested_at": iso(self.requested_at),
            "quality": quality,
        }


@dataclass
class FloorState:
    conference_id: str
    locked: bool = False
    current: Holder | None = None
    queue: list[QueueEntry] = field(default_factory=list)

    def queued(self, point_id: str) -> QueueEntry | None:
        return next((e for e in self.queue if e.point_id == point_id), None)

    def holds(self, point_id: str | None) -> bool:
        return point_id is not None and self.current is not None and self.current.point_id == point_id

    def as_dict(self, qualities: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
        """The whole state (what the chair sees); ``qualities``: link quality per queued point."""
        qualities = qualities or {}
        return {
            "v": VERSION,
            "locked": self.locked,
            "current": self.current.as_dict() if self.current else None,
            "queue": [e.as_dict(qualities.get(e.point_id)) for e in self.queue],
        }


def visible_state(state: dict[str, Any], role: str) -> dict[str, Any]:
    """``state`` (from :meth:`FloorState.as_dict`) as ``role`` may see it: viewers and members get
    who speaks and on what, not the queue (``null``) nor the point's id."""
    if role in QUEUE_ROLES:
        return state
    current = state.get("current")
    if current is not None:
        current = {k: v for k, v in current.items() if k != "point_id"}
    return {**state, "current": current, "queue": None}
