"""Counters of subscriber sessions, summed per conference, worker and kind, that never go back.

A consumer's counters (packets, bytes, retransmissions...) live only as long as the consumer: summing
the live ones alone would make a conference's total drop whenever a point leaves, which Prometheus
reads as a counter reset (and ``rate()`` as a spike). So each consumer's last figures are added to
``retired`` when it closes, and a scrape reports retired + live.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

KINDS = ("audio", "video")
# consumer stats field (per kind) -> metric suffix; all cumulative over the consumer's life
COUNTED = ("packets", "octets", "retransmits", "nacks_refused", "drops", "keyframe_requests", "packets_lost")
FORGET_AFTER = 6 * 3600.0  # a conference without sessions this long leaves the scrape

Key = tuple[str, str, str]  # (conference, worker, kind)


def worker_of(stats: Mapping[str, Any]) -> str:
    """The media process serving a consumer: "0" is the ingest, 1.. the workers."""
    return str(stats.get("worker", 0))


def add_counts(totals: dict[Key, dict[str, float]], conference: str, stats: Mapping[str, Any]) -> None:
    """Add one consumer's cumulative counters (its ``stats()``) into ``totals``."""
    worker = worker_of(stats)
    for kind in KINDS:
        figures = stats.get(kind)
        if not isinstance(figures, Mapping):
            continue
        row = totals[(conference, worker, kind)]
        for name in COUNTED:
            value = figures.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                row[name] += max(0.0, float(value))  # RFC 3550's cumulative loss may be negative


class SessionTotals:
    """What closed consumers had counted, kept so the conference's counters stay monotonic."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.retired: dict[Key, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.clock = clock
        self._last_active: dict[str, float] = {}

    def on_consumer(self, conference_id: str, consumer: Any, opened: bool) -> None:
        """``MediaEngine.on_consumer`` hook: a closing consumer's figures join the retired totals
        (a worker's consumer: as of the workers' last stats)."""
        self._last_active[conference_id] = self.clock()
        if not opened:
            add_counts(self.retired, conference_id, consumer.stats())

    def totals(self, live: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[Key, dict[str, float]]:
        """Retired plus the ``live`` consumers' (conference, stats); forgets conferences idle for
        ``FORGET_AFTER`` s so a long-running server does not keep every past conference's series."""
        now = self.clock()
        out: dict[Key, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        active: set[str] = set()
        for conference, stats in live:
            active.add(conference)
            add_counts(out, conference, stats)
        for conference in active:
            self._last_active[conference] = now
        stale = {c for c, at in self._last_active.items() if c not in active and now - at > FORGET_AFTER}
        for key in [k for k in self.retired if k[0] in stale]:
            del self.retired[key]
        for conference in stale:
            del self._last_active[conference]
        for key, row in self.retired.items():
            for name, value in row.items():
                out[key][name] += value
        return out
