"""ICE pairs relayed by a TURN server (coturn): media still flows, whichever side is relayed.

With a TURN server in ``ice_servers`` (config/diemcau.example.toml suggests one for points behind
strict firewalls), aioice also gathers relay candidates, and a pair whose local side is our relay
has no socket of ours: aioice's TurnTransport sends through the server. The speaker's ingest and
the point's consumer then take the Python send path through that transport (media.transport.webrtc_transport:
no socket, relayed_sendto) and are neither pinned nor on the C loop. To make the relay the only way, the server
gathers host candidates on ::1 only while the clients are IPv4 (127.0.0.1): no host pair can form.

The usual case is the other one: a point behind a strict firewall relays through TURN itself
(relay-only), and our side of its pair is an ordinary socket, pinned to the relayed address.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from bench.clip import test_clip
from bench.server_process import ServerProcess
from bench.whip_publisher import publish
from tests.support.server import ServerFactory
from tests.support.peers import subscribe
from tests.support.turn_server import TurnServer
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out

USER, PASSWORD = "diemcau", "relay-secret"


@pytest.fixture(scope="module")
def turn_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with TurnServer(tmp_path_factory.mktemp("turn"), "--lt-cred-mech", f"--user={USER}:{PASSWORD}") as turn:
        yield turn.port


@pytest.fixture(scope="module", params=["sharded", "single"])
def relayed_server(request, turn_port: int, start_server: ServerFactory) -> Iterator[ServerProcess]:
    with start_server(
        f"relayed-{request.param}",
        workers=3 if request.param == "sharded" else 1,
        ice_host_addresses=["::1"],
        ice_servers=[{"urls": f"turn:127.0.0.1:{turn_port}", "username": USER, "credential": PASSWORD}],
    ) as srv:
        yield srv


def _candidate_types(sdp: str) -> set[str]:
    return {line.split(" typ ")[1].split()[0] for line in sdp.splitlines() if line.startswith("a=candidate:")}


async def test_speaker_and_point_through_our_turn_relay(relayed_server: ServerProcess) -> None:
    server = relayed_server
    conf = server.create_conference("Qua TURN")
    pub = await publish(server.url, conf, server.token(conf, "speaker"), test_clip())
    sub = await subscribe(server.url, conf, server.token(conf, "point", "Xã vùng cao"))
    try:
        for pc in (pub.pc, sub.pc):  # the only candidates a client can use are our relayed ones
            answer = pc.remoteDescription.sdp
            assert "relay" in _candidate_types(answer), answer
            assert all(" typ host" not in line or "::1" in line
                       for line in answer.splitlines() if line.startswith("a=candidate:"))
        assert await sub.wait_frames(60, timeout=30), f"only {sub.frames} frames"
        assert sub.sizes == {(1280, 720)} and sub.audio_frames > 0
        with server.admin() as c:
            stats = c.get("/api/v1/media/stats").json()
        (point,) = [v for v in stats["consumers"].values() if v["conference"] == conf]
        assert not point["path_pinned"]  # no socket of ours to connect
        assert point["video"]["packets"] > 60 and point["video"]["drops"] == 0
        assert point["rtcp_datagrams"] > 0  # its receiver reports came back through the relay
        (speaker,) = [p for p in stats["producers"].values() if p["conference"] == conf]
        assert speaker["srtp_intake_datagrams"] > 200
        # our ICE consent checks (media.transport.consent_check) go out through the relay and are answered
        def our_point() -> dict:
            with server.admin() as c:
                stats = c.get("/api/v1/media/stats").json()
            (point,) = [v for v in stats["consumers"].values() if v["conference"] == conf]
            return point

        point = await wait_until_async(our_point, 10, "a consent check answered through the relay (one every 4-6 s)",
                                       check=lambda point: point["consent_checks"]["answered"] > 0, interval=0.25)
        assert point["consent_checks"]["lost"] == 0, point
        assert "Traceback" not in server.log_path.read_text(errors="replace")
    finally:
        await sub.close()
        await pub.close()


async def test_a_point_relayed_by_its_own_turn_server(server: ServerProcess, turn_port: int) -> None:
    """The shared server (host candidates on 127.0.0.1, no TURN of its own); the point relay-only."""
    conf = server.create_conference("Điểm cầu sau tường lửa")
    pub = await publish(server.url, conf, server.token(conf, "speaker"), test_clip())
    relay_only = RTCConfiguration(
        iceServers=[RTCIceServer(urls=f"turn:127.0.0.1:{turn_port}", username=USER, credential=PASSWORD)],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY,
    )
    sub = await subscribe(server.url, conf, server.token(conf, "point", "Xã biên giới"), config=relay_only)
    try:
        assert _candidate_types(sub.pc.localDescription.sdp) == {"relay"}
        assert await sub.wait_frames(60, timeout=30), f"only {sub.frames} frames"
        assert sub.sizes == {(1280, 720)} and sub.audio_frames > 0
        with server.admin() as c:
            stats = c.get("/api/v1/media/stats").json()
        (point,) = [v for v in stats["consumers"].values() if v["conference"] == conf]
        assert point["path_pinned"]  # our socket, connected to the point's relayed address
        assert point["paired"] and point["video"]["drops"] == 0 and point["rtcp_datagrams"] > 0
    finally:
        await sub.close()
        await pub.close()
