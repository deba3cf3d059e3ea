"""Closed sessions are freed within seconds (media.runtime.session_garbage), not at the collector's whim.

Real aiortc peers subscribe to an in-process engine over loopback, connect (ICE, DTLS, SRTP), and
live long enough to be old objects (a full collection has run while they were alive, as it would
have during a conference). Then they leave. A peer connection is a web of reference cycles, so only
a full collection frees it and the OpenSSL and SRTP memory it holds; the engine must run one soon
after the close. The test never calls ``gc.collect()`` after the leaves: it waits (bounded) for the
sessions' weak references to die. The engine runs in a process of its own.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import time
import weakref

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from media.engine import EngineConfig, MediaEngine
from media.runtime.session_garbage import SessionGarbage
from tests.support.waiting import wait_until_async

PEERS = 3


async def _join(engine: MediaEngine) -> tuple[RTCPeerConnection, object]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    consumer = await engine.subscribe("garbage", pc.localDescription.sdp)
    await pc.setRemoteDescription(RTCSessionDescription(consumer.answer_sdp, "answer"))
    await wait_until_async(lambda: pc.connectionState, 15, "the peer connected", interval=0.05,
                           check=lambda state: state == "connected")
    return pc, consumer


async def _scenario() -> dict:
    engine = MediaEngine(EngineConfig(ice_host_addresses=["127.0.0.1"], session_gc_interval=0.5))
    engine.garbage.delay = 0.5
    engine.start()
    clients = []
    refs: list[weakref.ref] = []
    try:
        for _ in range(PEERS):
            pc, consumer = await _join(engine)
            clients.append(pc)
            refs += [weakref.ref(consumer), weakref.ref(consumer.pc)]  # type: ignore[attr-defined]
        del consumer
        gc.collect()  # the sessions are old now: only a full collection can free them
        full_before = gc.get_stats()[2]["collections"]
        closed = [await engine.close_session("garbage", session_id) for session_id in list(engine.consumers)]
        left = len(engine.consumers)
        deadline = time.monotonic() + 10
        while any(r() is not None for r in refs) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return {
            "closed": closed,
            "left": left,
            "alive": [type(r()).__name__ for r in refs if r() is not None],
            "stats": engine.garbage.stats(),
            "full_collections": gc.get_stats()[2]["collections"] - full_before,
        }
    finally:
        for pc in clients:
            await pc.close()
        await engine.shutdown()


def _run_scenario() -> dict:
    return asyncio.run(_scenario())


def test_closed_consumers_are_freed_by_a_prompt_full_collection() -> None:
    # In a process of its own: the engine patches aiortc process-wide (forwarding codecs, no
    # decoding), which would stop the decoding test peers of later tests in this process.
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result = pool.apply_async(_run_scenario).get(timeout=120)
    assert result["closed"] == [True] * PEERS and result["left"] == 0, result
    assert not result["alive"], f"still alive after 10 s: {result['alive']}"
    stats = result["stats"]
    assert stats["closed_sessions"] == PEERS and stats["collections"] >= 1 and stats["objects"] > 0, stats
    assert result["full_collections"] > 0
    # Leaves in a burst cost one collection, not one each.
    assert stats["collections"] <= 2, stats


async def test_collections_are_spaced_by_the_interval_and_follow_late_closes() -> None:
    garbage = SessionGarbage(delay=0.1, interval=0.6)
    garbage.closed()
    await asyncio.sleep(0.3)
    assert garbage.collections == 1  # the first close: after the delay (its timer comes first)
    first = garbage.last_collection
    garbage.closed()  # within the interval: waits for it
    await wait_until_async(lambda: garbage.collections >= 2, 3, "a second collection", interval=0.05)
    assert garbage.collections == 2 and garbage.last_collection - first >= 0.6
    # Closes around a scheduled collection: every one is followed by a collection after its delay.
    garbage.closed()
    await asyncio.sleep(0.55)
    garbage.closed()
    closed_at = time.monotonic()
    await wait_until_async(lambda: garbage.collections >= 4, 3, "a fourth collection", interval=0.05)
    assert garbage.collections == 4 and garbage.closed_sessions == 4
    assert garbage.last_collection >= closed_at + 0.1
    garbage.cancel()
