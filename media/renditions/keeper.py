"""RenditionKeeper: a conference's transcoder runs only while some point is on the low rendition.

Points on the low rendition are counted where they live (each process's router counts its group;
the workers report theirs, media.sharding.pool). The first one starts the conference's transcoder
(media.renditions.transcoder); it stops ``idle_seconds`` after the last one left, so a point that
goes up and comes back down does not restart it each time. Runs in the ingest process only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from media.core.router import Router
from media.renditions.transcoder import Transcoder

log = logging.getLogger(__name__)


class RenditionKeeper:
    def __init__(
        self, router_of: Callable[[str], Router], demand_of: Callable[[str], int], idle_seconds: float = 30.0,
        size: tuple[int, int] = (640, 360), bitrate: int = 450_000,
    ) -> None:
        self.router_of = router_of
        self.demand_of = demand_of
        self.idle_seconds = idle_seconds
        self.size, self.bitrate = size, bitrate
        self.transcoders: dict[str, Transcoder] = {}
        self._idle: dict[str, asyncio.TimerHandle] = {}
        self.started = 0

    def changed(self, conference_id: str, *_: Any) -> None:
        """The number of points on a conference's low rendition changed somewhere."""
        demand = self.demand_of(conference_id)
        running = self.transcoders.get(conference_id)
        if demand > 0:
            timer = self._idle.pop(conference_id, None)
            if timer is not None:
                timer.cancel()
            if running is None:
                transcoder = Transcoder(self.router_of(conference_id), *self.size, bitrate=self.bitrate)
                self.transcoders[conference_id] = transcoder
                transcoder.start()
                self.started += 1
                log.info("conference %s: low rendition transcoder started", conference_id)
        elif running is not None and conference_id not in self._idle:
            loop = asyncio.get_running_loop()
            self._idle[conference_id] = loop.call_later(self.idle_seconds, self._stop, conference_id)

    def _stop(self, conference_id: str) -> None:
        self._idle.pop(conference_id, None)
        transcoder = self.transcoders.pop(conference_id, None)
        if transcoder is not None:
            transcoder.stop()
            log.info("conference %s: low rendition transcoder stopped", conference_id)

    def stats(self) -> dict:
        return {conf: t.stats() for conf, t in self.transcoders.items()}

    def close(self) -> None:
        for conference_id in list(self.transcoders):
            self._stop(conference_id)
        for timer in self._idle.values():
            timer.cancel()
        self._idle.clear()
