"""The quality store against a real SQLite file: the sampler's totals and an operator's pin run in
separate transactions and may both be first to create a point's row; neither may fail, and both
writes stay (the bench's "half on low" run once got a 500 from a pin that lost this race)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db.engine import make_engine, make_sessionmaker
from server.db.migrate import upgrade
from server.db.models import Conference, ConnectionPoint, QualityPoint
from server.domain import quality_store
from server.domain.quality_store import Totals


@asynccontextmanager
async def database(path: Path, points: tuple[str, ...] = ()) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A migrated SQLite file with conference c1 and ``points`` in it: its session factory."""
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        async with sessions() as db:
            db.add(Conference(id="c1", title="Hội nghị"))
            for point_id in points:
                db.add(ConnectionPoint(id=point_id, conference_id="c1", name=f"Xã {point_id}", level="commune"))
            await db.commit()
        yield sessions
    finally:
        await engine.dispose()


async def _scenario(path: Path) -> QualityPoint:
    async with database(path, ("p1",)) as sessions:
        async with sessions() as pin_db, sessions() as sampler_db:
            # The sampler looks first and finds no row, as it did in the failing run ...
            assert await quality_store.totals_of(sampler_db, "c1") == []
            # ... the pin creates the row but has not committed when the sampler writes.
            await quality_store.set_pin(pin_db, "c1", "p1", "low")
            totals = Totals({"full": 5.0, "low": 0.0, "audio": 0.0}, freezes=1)

            async def sample() -> None:
                await quality_store.add_totals(sampler_db, "c1", {"p1": totals})
                await sampler_db.commit()

            sampling = asyncio.create_task(sample())
            await asyncio.sleep(0.3)  # the sampler now waits on SQLite's write lock
            await pin_db.commit()
            await asyncio.wait_for(sampling, 30)
        async with sessions() as db:
            rows = await quality_store.totals_of(db, "c1")
            assert len(rows) == 1
            return rows[0]


def test_pin_and_totals_racing_to_create_a_row_both_land(tmp_path: Path) -> None:
    row = asyncio.run(_scenario(tmp_path / "q.db"))
    assert row.pinned == "low"
    assert row.seconds_full == 5.0
    assert row.freezes == 1


def test_totals_for_a_point_no_longer_in_the_database_are_skipped(tmp_path: Path) -> None:
    async def scenario() -> list[QualityPoint]:
        async with database(tmp_path / "q.db") as sessions, sessions() as db:
            await quality_store.add_totals(db, "c1", {"gone": Totals({"full": 3.0})})
            await quality_store.set_pin(db, "c1", "gone", "audio")
            await db.commit()
            return await quality_store.totals_of(db, "c1")

    assert asyncio.run(scenario()) == []
