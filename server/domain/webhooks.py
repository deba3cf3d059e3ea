"""Webhook events: what the server tells outside systems, made from the conference events on the bus.

Receivers get a JSON POST per event, ``{"id", "type", "occurred_at", "conference_id", "data"}``,
signed (server.domain.webhooks_signing) and delivered with retries (server.domain.webhooks_sender):

- ``point.joined`` / ``point.left``: a connection point's first WHEP session opened / its last closed;
- ``point.poor`` / ``point.recovered``: its link quality turned poor / came back from poor;
- ``speaker.live`` / ``speaker.offline``: the hall's publisher;
- ``floor.granted`` / ``floor.ended``: who holds the floor changed;
- ``recording.finished``: a recording was closed (its duration and size).

Only events of this node are turned into webhooks: in a cluster every node hears every event, and
each must be delivered once.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server.db.models import new_id, utcnow

EVENT_TYPES = (
    "point.joined", "point.left", "point.poor", "point.recovered", "speaker.live", "speaker.offline",
    "floor.granted", "floor.ended", "recording.finished",
)
POOR = "poor"
# Bus fields that are the bus's own, not the event's
BUS_FIELDS = ("topic", "origin", "type", "v")


@dataclass(frozen=True)
class WebhookEvent:
    type: str
    conference_id: str
    data: dict[str, Any]
    id: str = field(default_factory=new_id)
    occurred_at: dt.datetime = field(default_factory=utcnow)

    def body(self) -> bytes:
        """The exact bytes POSTed (and signed): compact JSON, UTF-8 (names are Vietnamese)."""
        payload = {"id": self.id, "type": self.type, "occurred_at": self.occurred_at.isoformat(),
                   "conference_id": self.conference_id, "data": self.data}
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def conference_of(event: dict[str, Any]) -> str | None:
    topic = str(event.get("topic", ""))
    return topic.removeprefix("conference.") if topic.startswith("conference.") else None


def _parse_time(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


class WebhookEvents:
    """A bus subscriber: each conference event that matters outside becomes a :class:`WebhookEvent`
    handed to ``emit`` (the sender's non-blocking ``submit``). It keeps what it needs to tell a change
    from a repeat: each point's open sessions and each conference's floor holder."""

    def __init__(self, emit: Callable[[WebhookEvent], None], is_local: Callable[[dict[str, Any]], bool],
                 started_at: dt.datetime | None = None) -> None:
        self.emit = emit
        self.is_local = is_local
        # A floor held since before this process started was announced by the process before it.
        self.started_at = started_at or utcnow()
        self._sessions: dict[tuple[str, str], set[str]] = {}
        self._holders: dict[str, dict[str, Any] | None] = {}

    def on_bus_event(self, event: dict[str, Any]) -> None:
        conference_id = conference_of(event)
        if conference_id is None:
            return
        kind = event.get("type")
        if not self.is_local(event):
            if kind == "floor.state":  # another node's change: its node announces it; remember the holder
                self._holders[conference_id] = _holding(event.get("current"))
            return
        if kind in ("consumer.joined", "consumer.left"):
            self._consumer(conference_id, event, kind == "consumer.joined")
        elif kind == "quality.changed":
            self._quality(conference_id, event)
        elif kind in ("speaker.live", "speaker.offline"):
            self._send(kind, conference_id, {"session_id": event.get("session_id")})
        elif kind == "floor.state":
            self._floor(conference_id, event.get("current"))
        elif kind == "recording.finished":
            self._send(kind, conference_id, {k: v for k, v in event.items() if k not in BUS_FIELDS})

    def _send(self, kind: str, conference_id: str, data: dict[str, Any]) -> None:
        self.emit(WebhookEvent(kind, conference_id, data))

    def _consumer(self, conference_id: str, event: dict[str, Any], joined: bool) -> None:
        """A point may watch over more than one session (a second screen): joined at its first,
        left at its last."""
        point_id, session_id = event.get("subject_id"), event.get("session_id")
        if event.get("role") != "point" or not point_id or not session_id:
            return
        key = (conference_id, point_id)
        sessions = self._sessions.setdefault(key, set())
        before = len(sessions)
        if joined:
            sessions.add(session_id)
        else:
            sessions.discard(session_id)
        if not sessions:
            del self._sessions[key]
        data = {"point_id": point_id, "name": event.get("name") or "", "session_id": session_id}
        if joined and before == 0:
            self._send("point.joined", conference_id, data)
        elif not joined and before == 1 and not sessions:
            self._send("point.left", conference_id, data)

    def _quality(self, conference_id: str, event: dict[str, Any]) -> None:
        score, previous = event.get("score"), event.get("previous")
        if score == previous or not event.get("point_id"):
            return
        if score == POOR:
            kind = "point.poor"
        elif previous == POOR:
            kind = "point.recovered"
        else:
            return
        self._send(kind, conference_id, {k: v for k, v in event.items() if k not in BUS_FIELDS})

    def _floor(self, conference_id: str, current: Any) -> None:
        """``floor.state`` goes out on every change (the queue, a mute, the holder's media): only a
        change of holding (point and grant time) is a webhook."""
        holder = _holding(current)
        known = conference_id in self._holders
        before = self._holders.get(conference_id)
        self._holders[conference_id] = holder
        if _same(before, holder):
            return
        if before is not None:
            self._send("floor.ended", conference_id, before)
        if holder is not None:
            granted_at = _parse_time(holder.get("granted_at"))
            if known or granted_at is None or granted_at >= self.started_at:
                self._send("floor.granted", conference_id, holder)


def _holding(current: Any) -> dict[str, Any] | None:
    if not isinstance(current, dict) or not current.get("point_id"):
        return None
    fields = ("point_id", "point_name", "level", "subject", "granted_at", "limit_seconds")
    return {k: current.get(k) for k in fields}


def _same(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a["point_id"], a["granted_at"]) == (b["point_id"], b["granted_at"])
