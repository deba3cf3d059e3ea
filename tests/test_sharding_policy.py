"""Where WHEP subscribers go: the ingest process takes a smaller share, in-flight joins count."""

from __future__ import annotations

import types
from pathlib import Path

from media.sharding.pool import WorkerHandle, WorkerPool


def pool_with(tmp_path: Path, loads: list[int]) -> WorkerPool:
    pool = WorkerPool(0, None)
    for index, load in enumerate(loads, start=1):
        handle = WorkerHandle(index, types.SimpleNamespace(pid=1000 + index), None)  # type: ignore[arg-type]
        handle.writer = object()  # type: ignore[assignment]  # connected
        handle.consumers = {str(i): None for i in range(load)}  # type: ignore[misc]
        pool.workers.append(handle)
    return pool


def place(pool: WorkerPool, subscribers: int, share: float) -> dict[int, int]:
    """Run the placement for ``subscribers`` joins; returns subscribers per process (0 = ingest)."""
    counts = {0: 0, **{w.index: len(w.consumers) for w in pool.workers}}
    for n in range(subscribers):
        worker = pool.least_loaded(counts[0], share)
        if worker is None:
            counts[0] += 1
        else:
            counts[worker.index] += 1
            worker.consumers[f"new{n}"] = None  # type: ignore[assignment]
    return counts


def test_ingest_takes_half_a_workers_share(tmp_path: Path) -> None:
    assert place(pool_with(tmp_path, [0]), 300, 0.5) == {0: 100, 1: 200}
    counts = place(pool_with(tmp_path, [0, 0, 0]), 700, 0.5)
    assert counts[0] == 100 and sorted(counts[i] for i in (1, 2, 3)) == [200, 200, 200]


def test_share_one_is_even_and_zero_keeps_the_ingest_free(tmp_path: Path) -> None:
    assert place(pool_with(tmp_path, [0]), 300, 1.0) == {0: 150, 1: 150}
    assert place(pool_with(tmp_path, [0]), 50, 0.0) == {0: 0, 1: 50}


def test_joins_in_flight_count_as_load(tmp_path: Path) -> None:
    pool = pool_with(tmp_path, [10, 10])
    pool.workers[0].joining = 5  # a storm: five answers from worker 1 still pending
    assert pool.least_loaded(100, 0.5) is pool.workers[1]
    pool.workers[1].joining = 8
    assert pool.least_loaded(100, 0.5) is pool.workers[0]


def test_no_live_worker_means_the_ingest_process(tmp_path: Path) -> None:
    pool = pool_with(tmp_path, [3])
    pool.workers[0].writer = None  # worker died
    assert pool.least_loaded(50, 0.5) is None
