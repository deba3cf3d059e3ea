"""Event bus for conference events (presence, floor, Q&A, quality, attendance).

The in-process bus is the embedded default; ``RedisBus`` (server/events/redis_bus.py) has the same
interface for several processes or machines. Handlers must be quick: they run on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
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
    """In-process publish/subscribe; topic ``*`` receives everything."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)

    async def publish(self, topic: str, event: Event) -> None:
        event = {"topic": topic, **event}
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
