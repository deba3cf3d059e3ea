"""A request that cannot get a database connection within the pool's timeout is answered 503 with
Retry-After (server.limits.database_busy), not 500: a real SQLite engine whose one connection another
request holds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from server.limits.database_busy import RETRY_AFTER, answer_database_busy


async def test_an_empty_pool_is_503_with_retry_after(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'busy.db'}", pool_size=1, max_overflow=0,
                                 pool_timeout=0.3)
    app = FastAPI()
    answer_database_busy(app)
    held = asyncio.Event()

    @app.get("/hold")
    async def hold() -> dict:
        async with engine.connect() as conn:
            await conn.execute(text("select 1"))
            held.set()
            await asyncio.sleep(1.5)
        return {"held": True}

    @app.get("/read")
    async def read() -> dict:
        async with engine.connect() as conn:
            return {"one": (await conn.execute(text("select 1"))).scalar()}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        holding = asyncio.create_task(client.get("/hold"))
        await asyncio.wait_for(held.wait(), 5)
        busy = await client.get("/read")
        assert busy.status_code == 503 and busy.headers["retry-after"] == RETRY_AFTER, busy.text
        assert "busy" in busy.json()["detail"]
        assert (await holding).status_code == 200
        assert (await client.get("/read")).json() == {"one": 1}  # the connection back: served again
    await engine.dispose()
