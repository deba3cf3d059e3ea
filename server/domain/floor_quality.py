"""A queued point's link quality, for the chair choosing whom to give the floor.

Taken from the point's own WHEP session (what its receiver reports say about the video we send
it): loss and round-trip time are the best guess at how its stream back to the hall would fare.
Sessions in media worker processes report their figures when the pool is asked for them, which
costs a round trip to every worker, so that is done at most every ``REFRESH_SECONDS``.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

REFRESH_SECONDS = 5.0
FIGURES = {"fraction_lost": "loss_percent", "rtt_ms": "rtt_ms", "jitter_ms": "jitter_ms"}


class LinkQuality:
    def __init__(self, media: Any) -> None:
        self.media = media  # MediaEngine: ``consumers`` carry ``subject_id`` and ``stats()``
        self._refreshed = 0.0

    async def refresh(self) -> None:
        """Pull the workers' per-session figures, unless that was done in the last few seconds."""
        pool = getattr(self.media, "pool", None)
        if pool is None or time.monotonic() - self._refreshed < REFRESH_SECONDS:
            return
        self._refreshed = time.monotonic()
        with contextlib.suppress(Exception):  # a busy worker only leaves the figures older
            await pool.refresh_stats()

    def of(self, conference_id: str, point_ids: list[str]) -> dict[str, dict[str, float]]:
        """``{point id: {"loss_percent", "rtt_ms", "jitter_ms"}}`` for the points with figures."""
        wanted = set(point_ids)
        found: dict[str, dict[str, float]] = {}
        if not wanted:
            return found
        for consumer in list(self.media.consumers.values()):
            point_id = getattr(consumer, "subject_id", None)
            if point_id not in wanted or consumer.conference_id != conference_id:
                continue
            try:
                video = consumer.stats().get("video") or {}
            except Exception:
                continue
            figures = {
                name: round(video[key] * 100 if key == "fraction_lost" else video[key], 1)
                for key, name in FIGURES.items()
                if isinstance(video.get(key), (int, float))
            }
            if figures:
                found[point_id] = figures
        return found
