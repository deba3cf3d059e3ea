"""Cluster mode: two server nodes on one real Redis share conference events."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from tests.support.peers import subscribe
from tests.support.waiting import wait_until_async


@pytest.fixture(scope="module")
def cluster(start_server):
    with start_server.two_nodes("cluster") as nodes:
        yield nodes


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
            await wait_until_async(lambda: sub.pc.connectionState == "connected", 5,
                                   "DTLS up, so the close below is a clean one", interval=0.05)
        finally:
            await sub.close()
        left = await next_event(ws, "consumer.left", timeout=10)
        assert left["session_id"] == event["session_id"]
