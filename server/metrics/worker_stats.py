"""The workers' figures for a scrape, fetched at most once per ``max_age`` seconds.

Each refresh is a request over every worker's control socket (``WorkerPool.refresh_stats``); a
scrape storm (several Prometheus servers, a dashboard refreshing fast) must not turn into a stream
of those, so concurrent scrapes share one refresh and a recent one is reused.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

DEFAULT_MAX_AGE = 2.0


class WorkerStatsCache:
    def __init__(self, media: Any, max_age: float = DEFAULT_MAX_AGE, clock: Callable[[], float] = time.monotonic) -> None:
        self.media = media  # MediaEngine: its ``pool`` (None in single-process mode)
        self.max_age = max_age
        self.clock = clock
        self.codecs: dict[str, int] = {}  # the workers' codec audits, merged, as of the last refresh
        self.refreshes = 0
        self._at: float | None = None
        self._lock = asyncio.Lock()

    async def fresh(self) -> None:
        """Make the workers' consumer stats (``RemoteConsumer.last_stats``) and process figures
        (``WorkerHandle.stats``) at most ``max_age`` s old."""
        pool = self.media.pool
        if pool is None or self._recent():
            return
        async with self._lock:
            if self._recent():  # another scrape refreshed while this one waited
                return
            self.codecs = await pool.refresh_stats()
            self.refreshes += 1
            self._at = self.clock()

    def _recent(self) -> bool:
        return self._at is not None and self.clock() - self._at < self.max_age
