"""A vanished subscriber is detected (RTCP silence) and cleaned up; nobody else notices."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.clip import test_clip
from tests.support.peers import publish, subscribe
from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def quick_timeout_server(tmp_path_factory):
    srv = ServerProcess(
        tmp_path_factory.mktemp("timeout"), env={"DIEMCAU_WORKERS": "2", "DIEMCAU_CONSUMER_TIMEOUT": "3"}
    ).start()
    yield srv
    srv.stop()


def silence(sub) -> None:
    """Stop everything the subscriber sends over DTLS/SRTP (RTCP receiver reports), as if it vanished."""
    transport = sub.pc.getTransceivers()[0].receiver.transport.transport

    async def drop(data: bytes) -> None:
        return None

    transport._send = drop


async def test_vanished_subscribers_are_dropped_and_others_continue(quick_timeout_server):
    server = quick_timeout_server
    conf = server.create_conference()
    pub = await publish(server.url, conf, server.token(conf, "speaker"), test_clip())
    point = server.token(conf, "point")
    subs = [await subscribe(server.url, conf, point) for _ in range(4)]
    try:
        for sub in subs:
            assert await sub.wait_frames(30, timeout=15)
        with server.admin() as c:
            before = c.get("/api/v1/media/stats").json()["consumers"]
        assert len(before) == 4
        assert {v.get("worker", 0) for v in before.values()} == {0, 1}
        silence(subs[0])
        silence(subs[1])
        remaining = set(before)
        for _ in range(40):  # bounded: up to ~10 s
            await asyncio.sleep(0.25)
            with server.admin() as c:
                remaining = set(c.get("/api/v1/media/stats").json()["consumers"])
            if len(remaining) == 2:
                break
        assert len(remaining) == 2, remaining
        start = [s.frames for s in subs[2:]]
        await asyncio.sleep(1.5)
        for sub, n in zip(subs[2:], start):
            assert sub.frames - n >= 30
        with server.admin() as c:
            stats = c.get("/api/v1/media/stats").json()["consumers"]
        for v in stats.values():  # link quality from receiver reports is reported per consumer
            assert "fraction_lost" in v["video"] and v["video"]["fraction_lost"] < 0.1
    finally:
        for sub in subs:
            await sub.close()
        await pub.close()
