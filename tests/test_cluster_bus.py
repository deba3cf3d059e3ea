"""Cluster mode: two server nodes on one real Redis share conference events."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from tests.support.peers import subscribe
from tests.support.redis_server import RedisServer
from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("cluster")
    redis_server = RedisServer(base / "redis").start()
    env = {
        "DIEMCAU_REDIS_URL": redis_server.url,
        "DIEMCAU_DATABASE_URL": f"sqlite+aiosqlite:///{base / 'shared.db'}",
        "DIEMCAU_WORKERS": "1",
    }
    a = ServerProcess(base / "a", env=env).start()
    b = ServerProcess(base / "b", env=env).start()
    yield a, b
    b.stop()
    a.stop()
    redis_server.stop()


async def next_event(ws, wanted: str, timeout: float = 10.0) -> dict:
    async def read() -> dict:
        while True:
            event = json.loads(await ws.recv())
            if event.get("type") == wanted:
                return event

    return await asyncio.wait_for(read(), timeout)


async def test_events_cross_nodes(cluster):
    a, b = cluster
    conf = a.create_conference()  # shared database: node B knows it too
    organiser = b.token(conf, "organiser")
    url_b = b.url.replace("http", "ws") + f"/ws/conferences/{conf}?token={organiser}"
    async with websockets.connect(url_b) as ws:
        snapshot = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert snapshot["type"] == "snapshot"
        sub = await subscribe(a.url, conf, a.token(conf, "point", "Xã Tân Lập"))  # WHEP on node A
        try:
            event = await next_event(ws, "consumer.joined")
            assert event["name"] == "Xã Tân Lập"
            assert event["origin"]  # the publishing node
            for _ in range(100):  # bounded wait for DTLS, so the close below is a clean one
                if sub.pc.connectionState == "connected":
                    break
                await asyncio.sleep(0.05)
        finally:
            await sub.close()
        left = await next_event(ws, "consumer.left", timeout=10)
        assert left["session_id"] == event["session_id"]
