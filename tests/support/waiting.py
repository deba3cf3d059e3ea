"""The tests' one way to wait for something: poll a probe until its value is good, bounded in time and
in the number of polls, and fail with what was last seen (a hung wait or a bare timeout explains nothing).

``wait_until`` is for synchronous tests (Playwright, threads, httpx); ``wait_until_async`` for tests on
the event loop, whose probe may also be a coroutine function. Both share the bookkeeping below.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import time
from collections.abc import Callable
from typing import Any


class _Polls:
    """Deadline and poll count of one wait; ``over`` once either is spent."""

    def __init__(self, timeout: float, interval: float, what: str) -> None:
        self.deadline = time.monotonic() + timeout
        self.left = math.ceil(timeout / max(interval, 0.001)) + 1  # polls; at least one past the deadline
        self.timeout = timeout
        self.what = what
        self.last: Any = None

    def done(self, value: Any, check: Callable[[Any], Any]) -> bool:
        self.last = value
        self.left -= 1
        return bool(check(value))

    @property
    def over(self) -> bool:
        return self.left <= 0 or time.monotonic() >= self.deadline

    def failure(self) -> AssertionError:
        body = getattr(self.last, "text", None)  # an HTTP response: what it said
        seen = f"{self.last} {body[:300]}" if isinstance(body, str) else str(self.last)
        return AssertionError(f"timed out after {self.timeout:g} s waiting for {self.what}; last value: {seen[:800]}")


def wait_until(probe: Callable[[], Any], timeout: float, what: str, *,
               check: Callable[[Any], Any] = bool, interval: float = 0.1) -> Any:
    """Call ``probe`` every ``interval`` s until ``check(value)``; return that value."""
    polls = _Polls(timeout, interval, what)
    while not polls.done(probe(), check):
        if polls.over:
            raise polls.failure()
        time.sleep(interval)
    return polls.last


async def wait_until_async(probe: Callable[[], Any], timeout: float, what: str, *,
                           check: Callable[[Any], Any] = bool, interval: float = 0.1) -> Any:
    """``wait_until`` on the event loop; ``probe`` may return an awaitable (awaited each poll)."""
    polls = _Polls(timeout, interval, what)
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if polls.done(value, check):
            return value
        if polls.over:
            raise polls.failure()
        await asyncio.sleep(interval)
