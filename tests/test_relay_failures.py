"""A vanished subscriber is detected (RTCP silence) and cleaned up; nobody else notices."""

from __future__ import annotations

import asyncio

import pytest

from bench.whip_publisher import publish
from tests.support.clips import light_clip
from tests.support.peers import subscribe
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out


@pytest.fixture(scope="module")
def quick_timeout_server(start_server):
    with start_server("timeout", workers=3, consumer_timeout=3) as srv:
        yield srv


def consumers(server: ServerProcess) -> dict:
    with server.admin() as c:
        return c.get("/api/v1/media/stats").json()["consumers"]


def silence(sub) -> None:
    """Stop everything the subscriber sends over DTLS/SRTP (RTCP receiver reports), as if it vanished."""
    transport = sub.pc.getTransceivers()[0].receiver.transport.transport

    async def drop(data: bytes) -> None:
        return None

    transport._send = drop


async def test_vanished_subscribers_are_dropped_and_others_continue(quick_timeout_server):
    server = quick_timeout_server
    conf = server.create_conference()
    pub = await publish(server.url, conf, server.token(conf, "speaker"), light_clip())
    subs = [await subscribe(server.url, conf, server.token(conf, "point", f"Xã {i}")) for i in range(4)]
    try:
        for sub in subs:
            assert await sub.wait_frames(30, timeout=15)
        with server.admin() as c:
            before = c.get("/api/v1/media/stats").json()["consumers"]
        assert len(before) == 4
        assert {v.get("worker", 0) for v in before.values()} == {1, 2}
        silence(subs[0])
        silence(subs[1])
        await wait_until_async(lambda: consumers(server), 10, "the two silent points dropped", interval=0.25,
                               check=lambda remaining: len(remaining) == 2)
        start = [s.frames for s in subs[2:]]
        for sub, n in zip(subs[2:], start):  # a second of video more (bounded: 10 s each)
            assert await sub.wait_frames(n + 30, timeout=10), (sub.frames, n)
        with server.admin() as c:
            stats = c.get("/api/v1/media/stats").json()["consumers"]
        for v in stats.values():  # link quality from receiver reports is reported per consumer
            assert "fraction_lost" in v["video"] and v["video"]["fraction_lost"] < 0.1
    finally:
        for sub in subs:
            await sub.close()
        await pub.close()


async def test_waiting_subscribers_are_kept_and_closed_peers_leave_promptly(quick_timeout_server):
    """Points connect early and send no RTCP until media flows: they must not be taken for dead."""
    server = quick_timeout_server
    conf = server.create_conference()
    point = server.token(conf, "point")
    subs = [await subscribe(server.url, conf, point) for _ in range(2)]  # one per media process
    pub = None
    try:
        await asyncio.sleep(5.0)  # longer than the 3 s RTCP timeout
        with server.admin() as c:
            assert len(c.get("/api/v1/media/stats").json()["consumers"]) == 2
        pub = await publish(server.url, conf, server.token(conf, "speaker"), light_clip())
        for sub in subs:
            assert await sub.wait_frames(30, timeout=15)
        await subs[0].close()  # a clean close (DTLS close_notify) ends the session at once
        await wait_until_async(lambda: consumers(server), 5, "the closed point gone", interval=0.25,
                               check=lambda remaining: len(remaining) == 1)
    finally:
        for sub in subs:
            await sub.close()
        if pub is not None:
            await pub.close()
