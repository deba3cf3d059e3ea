"""Event bus for conference events (presence, floor, Q&A, quality, attendance).

The in-process bus is the embedded default; ``RedisBus`` (server/events/redis_bus.py) has the same
interface for several processes or machines. Handlers must be quick: they run on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

Event = dict[str, Any]
Handler = Callable[[Event], Awaitable[None] | None]


class EventBus(Protocol):
    async def publish(self, topic: str, event: Event) -> None: ...

    def subscribe(self, topic: str, handler: Handler) -> Callable[[], None]: ...

    def stream(self, topic: str, maxsize: int = 256) -> AsyncIterator[Event]: ...


class LocalBus:
    """In-process publish/subscribe; topic ``*`` receives everything.

    Every event carries ``origin`` (the publishing node). With several nodes on a shared bus, handlers
    that persist something (attendance) act only on events of their own node, so nothing is counted
    twice; handlers that display something (WebSockets) take every event.
    """

    def __init__(self, node_id: str | None = None) -> None:
        self.node_id = node_id or secrets.token_hex(6)
        self._handlers: dict[str, list[Handler]] = defaultdict(list)

    def is_local(self, event: Event) -> bool:
        return event.get("origin", self.node_id) == self.node_id

    async def publish(self, topic: str, event: Event) -> None:
        await self._deliver({"topic": topic, "origin": self.node_id, **event})

    async def _deliver(self, event: Event) -> None:
        topic = event["topic"]
        for handler in [*self._handlers.get(topic, ()), *self._handlers.get("*", ())]:
            try:
                result = handler(event)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # one bad subscriber must not break the publisher
                log.exception("event handler failed for %s", topic)

    def subscribe(self, topic: str, handler: Handler) -> Callable[[], None]:
        self._handlers[topic].append(handler)

        def unsubscribe() -> None:
            try:
                self._handlers[topic].remove(handler)
            except ValueError:
                pass

        return unsubscribe

    async def stream(self, topic: str, maxsize: int = 256) -> AsyncIterator[Event]:
        """Yield events of a topic; a slow reader loses the oldest events rather than blocking."""
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)

        def put(event: Event) -> None:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

        unsubscribe = self.subscribe(topic, put)
        try:
            while True:
                yield await queue.get()
        finally:
            unsubscribe()


def conference_topic(conference_id: str) -> str:
    return f"conference.{conference_id}"
