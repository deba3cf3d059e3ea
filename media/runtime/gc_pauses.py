"""The garbage collector's pauses in this process: measured, and shortened by freezing start-up.

A relay process holds hundreds of peer connections' objects; a full (generation 2) collection walks
all of them while the event loop stands still. The counts, total and longest pause per generation
are in ``/api/v1/media/stats`` so an operator (and the benchmark) can see them.

Imports alone (FastAPI, SQLAlchemy, pydantic, aiortc, PyAV) leave ~140k container objects that live
as long as the process; a full collection of just those took ~100 ms here, and that was most of the
100-260 ms pauses seen during join storms. :func:`freeze_startup` moves them to the permanent
generation once a process has started (``gc.freeze``), so collections only walk what came later.
"""

from __future__ import annotations

import gc
import time
from typing import Any

_started: dict[int, float] = {}
stats: dict[int, dict[str, float]] = {g: {"count": 0, "seconds": 0.0, "max": 0.0} for g in range(3)}
_installed = False


def _callback(phase: str, info: dict[str, Any]) -> None:
    generation = info.get("generation", 0)
    if phase == "start":
        _started[generation] = time.perf_counter()
        return
    began = _started.pop(generation, None)
    if began is None:
        return
    pause = time.perf_counter() - began
    s = stats[generation]
    s["count"] += 1
    s["seconds"] += pause
    if pause > s["max"]:
        s["max"] = pause


def install() -> None:
    global _installed
    if not _installed:
        gc.callbacks.append(_callback)
        _installed = True


def freeze_startup() -> int:
    """Collect once, then exempt every object alive now from future collections; returns how many."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def snapshot() -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {str(g): dict(s) for g, s in stats.items()}
    out["frozen"] = {"count": gc.get_freeze_count()}
    return out
