"""HandshakeGate: bounds how many subscribers of one process negotiate ICE/DTLS at the same time.

A join storm that outruns the CPU otherwise starts every handshake at once: they share the cores,
all finish late, and slow flights draw DTLS retransmissions that add work. With a bound, a WHEP
request waits for a slot before it is answered. A slot is held from the answer until the point's
DTLS connects, its session closes, or ``hold`` seconds pass (a client that never connects must not
keep it); the wait for a slot is bounded too (``max_wait``), after which the join goes ahead anyway.
The bound must stay well above what a healthy storm needs: a slot is held for the client's part of
the handshake as well, so a tight bound throttles joins below what the CPU could serve (the
benchmark's 500-join storm was slower at 16 per process than with no bound; see docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class HandshakeGate:
    def __init__(self, limit: int, hold: float = 10.0, max_wait: float = 10.0) -> None:
        self.limit = limit  # 0: no bound
        self.hold = hold
        self.max_wait = max_wait
        self._slots = asyncio.Semaphore(limit) if limit > 0 else None
        self.active = 0  # handshakes holding a slot
        self.waiting = 0  # requests waiting for one
        self.admitted = 0
        self.waited = 0  # admissions that had to wait
        self.overrun = 0  # admissions after max_wait without a slot
        self.longest_wait = 0.0

    async def enter(self) -> Callable[[], None]:
        """Wait for a slot; returns the idempotent release (also called by itself after ``hold``)."""
        self.admitted += 1
        slots = self._slots
        if slots is None:
            return lambda: None
        acquired = True
        if not slots.locked():
            await slots.acquire()  # a free slot: taken without suspending
        else:
            self.waited += 1
            self.waiting += 1
            t0 = time.monotonic()
            try:
                await asyncio.wait_for(slots.acquire(), self.max_wait)
            except asyncio.TimeoutError:
                self.overrun += 1
                acquired = False
            finally:
                self.waiting -= 1
                self.longest_wait = max(self.longest_wait, time.monotonic() - t0)
        self.active += 1
        released = False
        timer: asyncio.TimerHandle | None = None

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self.active -= 1
            if timer is not None:
                timer.cancel()
            if acquired:
                slots.release()

        timer = asyncio.get_running_loop().call_later(self.hold, release)
        return release

    def stats(self) -> dict:
        return {"limit": self.limit, "active": self.active, "waiting": self.waiting, "admitted": self.admitted,
                "waited": self.waited, "overrun": self.overrun, "longest_wait_s": round(self.longest_wait, 3)}
