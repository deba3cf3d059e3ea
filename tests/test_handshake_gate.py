"""The handshake gate: a bounded number of ICE/DTLS handshakes per process, served in arrival order."""

from __future__ import annotations

import asyncio

from collections.abc import Iterator

import httpx
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from media.transport.handshake_gate import HandshakeGate
from tests.support import peers
from tests.support.server import ServerFactory, ServerProcess

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out


async def test_slots_bound_waiters_and_release_once() -> None:
    gate = HandshakeGate(2, hold=0.3, max_wait=5.0)
    first, second = await gate.enter(), await gate.enter()
    third = asyncio.ensure_future(gate.enter())
    await asyncio.sleep(0.05)
    assert not third.done() and gate.waiting == 1 and gate.active == 2
    first()
    first()  # idempotent: one slot back, not two
    release3 = await asyncio.wait_for(third, 1.0)
    assert gate.active == 2 and gate.waited == 1
    fourth = asyncio.ensure_future(gate.enter())
    await asyncio.sleep(0.05)
    assert not fourth.done()  # the double release did not free a second slot
    # nobody releases: the hold timer frees the slots of handshakes that never finish
    release4 = await asyncio.wait_for(fourth, 1.0)
    assert gate.longest_wait >= 0.2
    for release in (second, release3, release4):
        release()
    assert gate.active == 0 and gate.stats()["admitted"] == 4


async def test_a_full_gate_lets_a_join_through_after_max_wait() -> None:
    gate = HandshakeGate(1, hold=30.0, max_wait=0.2)
    held = await gate.enter()
    late = await asyncio.wait_for(gate.enter(), 2.0)  # no slot came back: it goes ahead anyway
    assert gate.overrun == 1 and gate.active == 2
    late()
    held()
    assert gate.active == 0
    again = await asyncio.wait_for(gate.enter(), 1.0)  # the overrun did not eat the slot
    again()


async def test_no_limit_means_no_waiting() -> None:
    gate = HandshakeGate(0)
    releases = [await gate.enter() for _ in range(50)]
    assert gate.waited == 0 and gate.admitted == 50
    for r in releases:
        r()


@pytest.fixture(scope="module")
def gated_server(start_server: ServerFactory) -> Iterator[ServerProcess]:
    """One media process that runs one handshake at a time."""
    with start_server("gated", workers=1, max_handshakes=1) as srv:
        yield srv


def _gate(srv: ServerProcess) -> dict:
    with srv.admin() as c:
        return c.get("/api/v1/media/stats").json()["workers"][0]["handshakes"]


async def test_server_answers_the_next_point_once_the_first_has_connected(gated_server: ServerProcess) -> None:
    """Real aiortc points over WHEP on 127.0.0.1; each answer waits for the previous DTLS to connect.

    The three offers are complete (ICE gathered) before any request goes out, and an answer is only
    applied once the requests not yet answered are all waiting at the gate, so the second and third
    must wait for the slot (a loaded machine can otherwise deliver a request after the slot is free).
    """
    srv = gated_server
    conf = srv.create_conference("Gate")
    before = _gate(srv)
    tokens = [srv.token(conf, "point", f"P{i}") for i in range(3)]
    pcs = [RTCPeerConnection(peers.NO_ICE) for _ in range(3)]
    try:
        for pc in pcs:
            pc.addTransceiver("video", direction="recvonly")
            pc.addTransceiver("audio", direction="recvonly")
        offers = await asyncio.gather(*(pc.createOffer() for pc in pcs))
        await asyncio.wait_for(asyncio.gather(*(pc.setLocalDescription(o) for pc, o in zip(pcs, offers))), 30)
        async with httpx.AsyncClient(base_url=srv.url, timeout=30) as client:

            answered = 0

            async def join(token: str, pc: RTCPeerConnection) -> int:
                """Send the offer; apply the answer (the next answer waits for this DTLS) once every
                request not yet answered is waiting for the slot."""
                nonlocal answered
                r = await client.post(f"/whep/{conf}", content=pc.localDescription.sdp,
                                      headers={"Authorization": f"Bearer {token}",
                                               "Content-Type": "application/sdp"})
                if r.status_code != 201:
                    return r.status_code
                answered += 1
                for _ in range(50):  # bounded: 5 s, well inside the slot's 10 s hold
                    if _gate(srv)["waiting"] >= len(pcs) - answered:
                        break
                    await asyncio.sleep(0.1)
                await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
                return r.status_code

            codes = await asyncio.wait_for(asyncio.gather(*(join(t, pc) for t, pc in zip(tokens, pcs))), 60)
            assert codes == [201] * 3
        joins: list[dict] = []
        for _ in range(100):  # bounded: 10 s
            with srv.admin() as c:
                consumers = c.get("/api/v1/media/stats").json()["consumers"].values()
            joins = [x["join"] for x in consumers if x["conference"] == conf]
            if len(joins) == 3 and all(j["connected"] for j in joins):
                break
            await asyncio.sleep(0.1)
        assert len(joins) == 3 and all(j["connected"] for j in joins)
        order = sorted(joins, key=lambda j: j["answered"])
        for first, then in zip(order, order[1:]):
            assert then["created"] >= first["connected"]  # its answer waited for the slot
        gate = _gate(srv)
        assert gate["limit"] == 1 and gate["active"] == 0
        assert gate["admitted"] - before["admitted"] == 3 and gate["waited"] - before["waited"] == 2
    finally:
        for pc in pcs:
            await pc.close()


async def test_a_point_that_never_connects_gives_its_slot_back_when_it_leaves(gated_server: ServerProcess) -> None:
    srv = gated_server
    conf = srv.create_conference("Gate 2")
    token = srv.token(conf, "point", "silent")
    silent = RTCPeerConnection(peers.NO_ICE)
    silent.addTransceiver("video", direction="recvonly")
    await silent.setLocalDescription(await silent.createOffer())
    try:
        async with httpx.AsyncClient(base_url=srv.url, timeout=20) as client:
            r = await client.post(f"/whep/{conf}", content=silent.localDescription.sdp,
                                  headers={"Authorization": f"Bearer {token}", "Content-Type": "application/sdp"})
            assert r.status_code == 201  # answered, but the answer is never applied: no ICE, no DTLS
            waiting = asyncio.ensure_future(peers.subscribe(srv.url, conf, srv.token(conf, "point", "next")))
            await asyncio.sleep(1.0)
            assert not waiting.done() and _gate(srv)["waiting"] == 1
            gone = await client.delete(r.headers["location"], headers={"Authorization": f"Bearer {token}"})
            assert gone.status_code in (200, 204)
            sub = await asyncio.wait_for(waiting, 10)
        await sub.close()
    finally:
        await silent.close()
