"""ICE_PORT_RANGE and ICE_PUBLIC_ADDRESSES (media.transport.port_range, media.transport.host_candidates).

A server with one media worker (where the points go) and a range of three ports: each point's socket
takes one of them and its answer carries only ports of the range; a fourth point gets a 503 at once
(with Retry-After; the worker's refusal crosses to the ingest as what it is), not an answer that never
connects; once a point leaves, its port serves the next. The public address is
advertised beside the local one, on the same port, and the peers still connect over 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
from aiortc import RTCPeerConnection
from pydantic import ValidationError

from bench.whip_publisher import NO_ICE, negotiate
from media.transport.port_range import PortRange
from server.settings import Settings
from tests.support.peers import delete_session
from tests.support.server import ServerFactory, ServerProcess
from tests.support.udp_ports import candidate_ports, free_udp_ports
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.slow  # over ~10 s (a server with a worker): `make test-fast` leaves it out

PORTS = 3
PUBLIC = "203.0.113.7"  # TEST-NET-3: advertised, never reached


@pytest.fixture(scope="module")
def ranged(start_server: ServerFactory) -> Iterator[tuple[ServerProcess, range]]:
    first = free_udp_ports(PORTS)
    with start_server("portrange", workers=2, ice_port_range=f"{first}-{first + PORTS - 1}",
                      ice_public_addresses=[PUBLIC]) as srv:
        yield srv, range(first, first + PORTS)


def offer_pc() -> RTCPeerConnection:
    pc = RTCPeerConnection(NO_ICE)
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    return pc


async def test_every_port_in_the_range_then_503_then_a_freed_port_serves_again(ranged):
    server, ports = ranged
    conf = server.create_conference()
    tokens = [server.token(conf, "point", f"Xã {i}") for i in range(PORTS + 1)]
    pcs = [offer_pc() for _ in range(PORTS)]
    try:
        locations = [await negotiate(pc, f"{server.url}/whep/{conf}", token) for pc, token in zip(pcs, tokens)]
        used = []
        for pc in pcs:
            candidates = candidate_ports(pc.remoteDescription.sdp)
            assert {a for a, _ in candidates} == {"127.0.0.1", PUBLIC}
            (port,) = {p for _, p in candidates}  # the public address on the local socket's port
            used.append(port)
        assert sorted(used) == list(ports), "each point has a port of its own, inside the range"
        await wait_until_async(lambda: [pc.connectionState for pc in pcs], 20, "the points connected",
                               check=lambda states: states == ["connected"] * PORTS)
        with server.admin() as client:
            consumers = client.get("/api/v1/media/stats").json()["consumers"]
        assert [c["worker"] for c in consumers.values()] == [1] * PORTS  # the worker's sockets, refusal

        extra = offer_pc()
        try:
            await extra.setLocalDescription(await extra.createOffer())
            started = time.monotonic()
            async with httpx.AsyncClient(timeout=20) as client:
                refused = await client.post(f"{server.url}/whep/{conf}", content=extra.localDescription.sdp,
                                            headers={"Authorization": f"Bearer {tokens[-1]}",
                                                     "Content-Type": "application/sdp"})
            assert refused.status_code == 503, refused.text
            assert time.monotonic() - started < 5, "exhaustion is told at once"
            assert "no media port free" in refused.text and refused.headers["retry-after"].isdigit()
        finally:
            await extra.close()

        assert await delete_session(locations[0], tokens[0]) == 200
        again = offer_pc()
        pcs.append(again)
        async def answered() -> int:  # the port is freed as the session closes: retried until it is
            try:
                await negotiate(again, f"{server.url}/whep/{conf}", tokens[-1])
            except RuntimeError as exc:
                assert " 503 " in str(exc), exc
                return 0
            return 1
        await wait_until_async(answered, 10, "the freed port taken by the next point", interval=0.2)
        assert {p for _, p in candidate_ports(again.remoteDescription.sdp)} == {used[0]}
        await wait_until_async(lambda: again.connectionState, 20, "the next point connected",
                               check=lambda state: state == "connected")
        assert "Traceback" not in server.log_path.read_text(errors="replace")
    finally:
        await asyncio.gather(*(pc.close() for pc in pcs))


def test_port_settings_are_checked() -> None:
    assert PortRange.parse("40000-40199") == PortRange(40000, 40199) and len(PortRange.parse(" 5000 - 5000 ")) == 1
    for bad in ("40000", "40199-40000", "80-90", "40000-70000", "a-b"):
        with pytest.raises(ValueError):
            PortRange.parse(bad)
    with pytest.raises(ValidationError, match="exclude each other"):
        Settings(ice_udp_port=40000, ice_port_range="40000-40199")
    with pytest.raises(ValidationError, match="passes 65535"):  # worker i takes ice_udp_port + i
        Settings(ice_udp_port=65535, workers=3)
    assert Settings(ice_udp_port=65533, workers=3).ice_udp_port == 65533
    with pytest.raises(ValidationError):
        Settings(ice_public_addresses=["not-an-address"])
    assert Settings(ice_public_addresses=["203.0.113.7"], ice_port_range="40000-40199").ice_public_addresses == [
        "203.0.113.7"]
