"""The floor's deadlines: the warning before a time limit, the limit itself, a lost link's grace.

Each is a one-shot action at a wall-clock time under a key (conference, what); setting a key again
replaces its earlier action, so a new grant or a republished stream simply re-arms or cancels. The
actions themselves check that the holding they were armed for still holds (``grant_id``), since a
timer can fire just as the floor changes hands.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable

from server.db.models import utcnow

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (conference id, "warning" | "limit" | "link")
Action = Callable[[], Awaitable[None]]


class Deadlines:
    def __init__(self) -> None:
        self._tasks: dict[Key, asyncio.Task] = {}

    def set(self, key: Key, at: dt.datetime, action: Action) -> None:
        """Run ``action`` at ``at`` (at once if that has passed), replacing what ``key`` had."""
        self.cancel(key)
        self._tasks[key] = asyncio.ensure_future(self._run(key, at, action))

    def pending(self, key: Key) -> bool:
        return key in self._tasks

    def cancel(self, key: Key) -> None:
        task = self._tasks.pop(key, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def cancel_conference(self, conference_id: str) -> None:
        for key in [k for k in self._tasks if k[0] == conference_id]:
            self.cancel(key)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self, key: Key, at: dt.datetime, action: Action) -> None:
        delay = (at - utcnow()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)
        if self._tasks.get(key) is asyncio.current_task():
            del self._tasks[key]
        try:
            await action()
        except Exception:  # a failed deadline must not take the others down
            log.exception("floor deadline %s failed", key)
