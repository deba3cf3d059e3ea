"""Closed sessions are reclaimed within seconds, not whenever the collector's heuristics allow.

An aiortc peer connection is a web of reference cycles (transports, event emitters, bound
callbacks), so a closed session is freed only by a full collection, and with it its OpenSSL DTLS
object and buffers, SRTP contexts and packet history: ~150 KB of C memory per session that the
collector does not see. CPython runs a full (generation 2) collection only once the objects that
survived into it since the last one exceed a quarter of the long-lived ones; a relay whose live
sessions are few, or none after the conference, may not get there for hours. In the soak, 180
joins and leaves grew a worker's malloc heap by 16 MB that one ``gc.collect()`` gave back (3 full
collections in 4 minutes), and an operator saw the server keep ~176 KB per join with nobody
connected.

So each closed session asks for one full collection ``delay`` seconds later (its close callbacks
and tasks have finished by then), at most one every ``interval`` seconds: memory held by closed
sessions is bounded by what closes in ``interval``, and a churn of N leaves costs at most one
collection per ``interval``, never one per leave. The pauses are in ``media.runtime.gc_pauses``' figures.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

DELAY = 2.0  # seconds after a close before its objects are looked for
INTERVAL = 10.0  # at most one full collection this often


class SessionGarbage:
    """Schedules full collections after sessions close; one per process (each engine has one)."""

    def __init__(self, delay: float = DELAY, interval: float = INTERVAL) -> None:
        self.delay = delay
        self.interval = interval
        self.closed_sessions = 0
        self.collections = 0
        self.objects = 0  # unreachable objects those collections found
        self.seconds = 0.0
        self.last_collection = -interval
        self._due = 0.0  # a collection is owed until then (the latest close + delay)
        self._handle: asyncio.TimerHandle | None = None

    def closed(self, _session: Any = None) -> None:
        """A session has closed: make sure a collection follows (usable as an on_close callback)."""
        self.closed_sessions += 1
        self._due = max(self._due, time.monotonic() + self.delay)
        if self._handle is None:
            self._schedule()

    def _schedule(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (interpreter shutting down): nothing to schedule on
        at = max(self._due, self.last_collection + self.interval)
        self._handle = loop.call_later(max(0.0, at - time.monotonic()), self._collect)

    def _collect(self) -> None:
        self._handle = None
        began = time.monotonic()
        started = time.perf_counter()
        self.objects += gc.collect()
        self.seconds += time.perf_counter() - started
        self.collections += 1
        self.last_collection = time.monotonic()
        if self._due > began:  # a session closed too recently for this collection to find it
            self._schedule()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def stats(self) -> dict[str, float]:
        return {
            "closed_sessions": self.closed_sessions,
            "collections": self.collections,
            "objects": self.objects,
            "seconds": round(self.seconds, 4),
        }
