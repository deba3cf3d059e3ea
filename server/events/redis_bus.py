"""Event bus over Redis pub/sub, for several server processes or machines (cluster mode).

Local subscribers get an event at once (as with ``LocalBus``); the event is also published on Redis
for the other nodes, and this node ignores its own echo.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import redis.asyncio as aioredis

from server.events.bus import Event, LocalBus

log = logging.getLogger(__name__)
CHANNEL_PREFIX = "diemcau:"


class RedisBus(LocalBus):
    def __init__(self, url: str, node_id: str | None = None) -> None:
        super().__init__(node_id)
        self.url = url
        self._redis = aioredis.from_url(url, decode_responses=True)
        self._reader: asyncio.Task | None = None
        self._ready = asyncio.Event()

    async def start(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._redis.ping(), timeout)
        self._reader = asyncio.create_task(self._read())
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def _read(self) -> None:
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.psubscribe(CHANNEL_PREFIX + "*")
                self._ready.set()
                async for message in pubsub.listen():
                    if message.get("type") != "pmessage":
                        continue
                    try:
                        event = json.loads(message["data"])
                    except (TypeError, ValueError):
                        continue
                    if event.get("origin") != self.node_id:
                        await self._deliver(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("redis bus connection lost; reconnecting", exc_info=True)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def publish(self, topic: str, event: Event) -> None:
        full = {"topic": topic, "origin": self.node_id, **event}
        await self._deliver(full)
        try:
            await self._redis.publish(CHANNEL_PREFIX + topic, json.dumps(full, default=str))
        except Exception:
            log.warning("redis publish failed for %s", topic, exc_info=True)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        await self._redis.aclose()
