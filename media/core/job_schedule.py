"""JobSchedule: many periodic per-point jobs of one event loop on one timer.

A sleeping task (or a timer) per point and job cost an event-loop wake-up per run on top of the
run itself, and hundreds of points make that a steady cost. Here a heap orders the jobs and one
wake-up runs every job that is due within ``SLACK``. Sender reports (media.egress.sender_report) and our
ICE consent checks (media.transport.consent_check) use it.

A job has ``active`` (False: dropped at its next turn, lazily), ``first_delay()`` (seconds to its
first run) and ``fire(wall)``: it runs and returns the seconds until its next run, or None when
it is done. A job whose session has closed is taken out with ``remove``: waiting for its turn would
keep the session's objects (peer connection, DTLS, SRTP) alive for seconds after the close, past
the collection that media.runtime.session_garbage runs for them.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
import weakref
from typing import Any, Protocol

log = logging.getLogger(__name__)

RETRY_AFTER = 1.0  # seconds until a job that raised runs again


class Job(Protocol):
    active: bool

    def first_delay(self) -> float: ...

    def fire(self, wall: float) -> float | None: ...


class JobSchedule:
    SLACK = 0.02

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, Any]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")

    def add(self, job: Job) -> None:
        self._push(self._loop.time() + job.first_delay(), job)

    def _push(self, due: float, job: Job) -> None:
        heapq.heappush(self._heap, (due, next(self._order), job))
        if due < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = due
            self._timer = self._loop.call_at(due, self._run)

    def _run(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        heap = self._heap
        horizon = self._loop.time() + self.SLACK
        wall = time.time()
        due_now = []
        while heap and heap[0][0] <= horizon:
            due_now.append(heapq.heappop(heap)[2])
        for job in due_now:
            if not job.active:
                continue
            try:
                delay = job.fire(wall)
            except Exception:
                log.exception("%s failed", type(job).__name__)
                delay = RETRY_AFTER
            if delay is not None:
                heapq.heappush(heap, (self._loop.time() + delay, next(self._order), job))
        if heap:
            self._timer_at = heap[0][0]
            self._timer = self._loop.call_at(self._timer_at, self._run)

    def remove(self, job: Job) -> None:
        """Stop ``job`` and drop it from the heap now (O(n) in jobs; closes are rare beside fires)."""
        job.active = False
        kept = [entry for entry in self._heap if entry[2] is not job]
        if len(kept) != len(self._heap):
            heapq.heapify(kept)
            self._heap[:] = kept

    def __len__(self) -> int:
        return sum(1 for _, _, job in self._heap if job.active)


_schedules: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, JobSchedule]]" = (
    weakref.WeakKeyDictionary()
)


def schedule(name: str) -> JobSchedule:
    """The running loop's schedule called ``name`` (one per process in practice; tests run several
    loops). Separate names keep separate counts; each has its own timer."""
    loop = asyncio.get_running_loop()
    named = _schedules.get(loop)
    if named is None:
        named = _schedules[loop] = {}
    found = named.get(name)
    if found is None:
        found = named[name] = JobSchedule(loop)
    return found
