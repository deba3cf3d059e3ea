"""Turns conference events from the bus into attendance rows, committed as they arrive.

The bus handler only queues (publishers never wait for the database); one writer task drains the
queue in arrival order, so a join is always written before its leave, and commits every batch at
once. A liveness task stamps this process's open sessions every ``TOUCH_INTERVAL`` so that after a
kill -9 the next start can close them at the last moment they were known to be alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import socket
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db.models import utcnow
from server.domain import attendance
from server.events.bus import Event, EventBus, conference_topic

log = logging.getLogger(__name__)

RECORDED = frozenset({"consumer.joined", "consumer.left", "presence.joined", "presence.left"})
TOUCH_INTERVAL = 20.0
DEAD_AFTER = dt.timedelta(seconds=TOUCH_INTERVAL * 4)
MAX_BATCH = 200
_STOP = object()


def node_name(port: int) -> str:
    """This server process among the cluster's nodes (sessions it opened are closed by its next start)."""
    return f"{socket.gethostname()}:{port}"


def conference_of(event: Event) -> str | None:
    topic = str(event.get("topic", ""))
    return topic.removeprefix("conference.") if topic.startswith("conference.") else None


class AttendanceLog:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bus: EventBus,
        node: str,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.bus = bus
        self.node = node
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self._unsubscribe: Callable[[], None] | None = None
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> int:
        """Close what a previous run of this node left open, then start listening."""
        async with self.sessionmaker() as db:
            closed = await attendance.close_orphans(db, node=self.node, reason="server_restart")
            await db.commit()
        if closed:
            log.info("closed %d attendance sessions left open by the previous run", closed)
        self._unsubscribe = self.bus.subscribe("*", self._on_event)
        self._tasks = [
            asyncio.create_task(self._write_loop(), name="attendance-writer"),
            asyncio.create_task(self._liveness_loop(), name="attendance-liveness"),
        ]
        return closed

    async def stop(self) -> None:
        """Write everything queued, then close this node's sessions as ended by the shutdown."""
        if self._unsubscribe:
            self._unsubscribe()
        if not self._tasks:
            return
        writer, liveness = self._tasks
        liveness.cancel()
        self.queue.put_nowait(_STOP)
        with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
            await asyncio.wait_for(writer, 10)
        with contextlib.suppress(asyncio.CancelledError):
            await liveness
        async with self.sessionmaker() as db:
            await attendance.close_node_sessions(db, self.node, "server_stop")
            await db.commit()
        self._tasks = []

    def _on_event(self, event: Event) -> None:
        if event.get("type") not in RECORDED or not conference_of(event):
            return
        is_local = getattr(self.bus, "is_local", None)
        if is_local is not None and not is_local(event):
            return  # another node's session: that node records it (a shared bus must not double count)
        self.queue.put_nowait({**event, "_at": utcnow()})

    async def _write_loop(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < MAX_BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            stop = any(item is _STOP for item in batch)
            events = [item for item in batch if item is not _STOP]
            try:
                if events:
                    await self._write(events)
            finally:
                for _ in batch:
                    self.queue.task_done()
            if stop:
                return

    async def _write(self, events: list[Event]) -> None:
        changed: dict[str, set[str]] = {}
        try:
            async with self.sessionmaker() as db:
                for event in events:
                    await self._apply(db, event, changed)
                await db.commit()
        except Exception:
            log.exception("attendance batch failed; writing its %d events one by one", len(events))
            changed = {}
            for event in events:
                try:
                    async with self.sessionmaker() as db:
                        await self._apply(db, event, changed)
                        await db.commit()
                except Exception:
                    log.exception("attendance event dropped: %s", event)
        for conference_id, subjects in changed.items():
            await self.bus.publish(
                conference_topic(conference_id),
                {"type": "attendance.changed", "subjects": sorted(subjects)},
            )

    async def _apply(self, db: AsyncSession, event: Event, changed: dict[str, set[str]]) -> None:
        conference_id = conference_of(event)
        assert conference_id is not None
        kind = "webrtc" if event["type"].startswith("consumer.") else "presence"
        joined = event["type"].endswith(".joined")
        at: dt.datetime = event["_at"]
        token_id, subject_id = event.get("token_id"), event.get("subject_id")
        session_key = event.get("session_id") if kind == "webrtc" else None
        role = event.get("role") or ""
        if joined:
            if token_id is None and kind == "presence":
                return  # the admin: not a participant
            subject = await attendance.resolve_subject(db, conference_id, role, subject_id)
            await attendance.open_session(
                db,
                conference_id,
                kind,
                session_key=session_key,
                token_id=token_id,
                role=role,
                name=event.get("name") or "",
                subject=subject,
                node=self.node,
                at=at,
            )
        else:
            if kind == "presence":
                if token_id is None:
                    return
                row = await attendance.find_open(db, conference_id, kind, token_id=token_id)
            else:
                row = await attendance.find_open(db, conference_id, kind, session_key=session_key)
            if row is None:
                return  # opened before a restart and already closed as such
            if row.token_id is None and token_id is not None:
                subject = await attendance.resolve_subject(db, conference_id, role, subject_id)
                row.token_id, row.subject_type, row.subject_id = token_id, subject.type, subject.id
            attendance.close(row, at, "left")
            subject = attendance.Subject(row.subject_type, row.subject_id)
        if subject.id:
            changed.setdefault(conference_id, set()).add(subject.id)

    async def _liveness_loop(self) -> None:
        while True:
            await asyncio.sleep(TOUCH_INTERVAL)
            try:
                now = utcnow()
                async with self.sessionmaker() as db:
                    await attendance.touch_node(db, self.node, now)
                    await attendance.close_stale_heartbeats(db, now)
                    await attendance.close_orphans(
                        db, stale_before=now - DEAD_AFTER, reason="node_lost"
                    )
                    await db.commit()
            except Exception:
                log.exception("attendance liveness update failed")
