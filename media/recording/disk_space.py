"""Free space under the recordings: below a floor, no recording starts and a running one pauses.

A full disk stops more than recording: the attendance database lives on the same data directory, and
SQLite cannot commit a join or a leave without room for its journal. So the recorder leaves
``min_free_bytes`` to everything else, and the dashboard and ``/metrics`` say when it does.
``statvfs`` is cheap, but the writer thread asks for every frame, so the answer is kept a second.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CHECK_EVERY = 1.0  # seconds a measurement is reused


@dataclass(frozen=True)
class DiskState:
    free_bytes: int
    total_bytes: int
    min_free_bytes: int

    @property
    def low(self) -> bool:
        return self.free_bytes < self.min_free_bytes


class DiskGuard:
    """Thread-safe: the event loop and the recorders' writer threads both ask."""

    def __init__(self, path: Path, min_free_bytes: int) -> None:
        self.path = path
        self.min_free_bytes = min_free_bytes
        self._lock = threading.Lock()
        self._state: DiskState | None = None
        self._at = 0.0

    def state(self) -> DiskState:
        now = time.monotonic()
        with self._lock:
            if self._state is None or now - self._at >= CHECK_EVERY or self._state.min_free_bytes != self.min_free_bytes:
                st = os.statvfs(self.path if self.path.exists() else self.path.parent)
                # f_bavail: what an unprivileged writer may still use (the root reserve is not ours)
                self._state = DiskState(st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize, self.min_free_bytes)
                self._at = now
            return self._state

    def room(self) -> bool:
        """May recording go on?"""
        return not self.state().low
