"""ICE_UDP_PORT: every peer of a media process on one UDP socket (media.transport.udp_mux).

A server of its own (the ingest and two media workers) with ``ice_udp_port``: the speaker and 50
points connect with real aiortc peers over 127.0.0.1 and receive media, while each media process
holds exactly one UDP socket, on its port (the ingest's, then one more per worker), and every
answer's candidates carry that port. STUN requests for usernames the socket does not know, or
not signed with their password, get no answer and harm nobody; a signed one from a new address does,
and moves a known address to the connection it names. A point that can reach only TURN over TLS
watches through coturn run from config/coturn.conf. A port already taken is refused by name.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aioice import stun
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from bench.clip import test_clip
from bench.nginx_front import self_signed
from bench.server_process import free_port
from bench.whip_publisher import NO_ICE, negotiate, publish
from media.ingest.frame_tap import drop_frames
from media.transport.turn_rest import rest_credentials
from media.transport.udp_mux import UdpMux
from tests.support.server import ServerFactory, ServerProcess
from tests.support.udp_ports import candidate_ports, free_udp_ports, udp_sockets
from tests.support.waiting import wait_until, wait_until_async

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out

POINTS = 50
COTURN_CONF = Path(__file__).resolve().parent.parent / "config" / "coturn.conf"
TURN_SECRET = "a-test-secret-for-coturn"
MEDIA_PROCESSES = 3  # the ingest and two workers


@pytest.fixture(scope="module")
def muxed(start_server: ServerFactory) -> Iterator[tuple[ServerProcess, int]]:
    port = free_udp_ports(MEDIA_PROCESSES)
    with start_server("udpmux", workers=MEDIA_PROCESSES, ice_udp_port=port) as srv:
        yield srv, port


@pytest.fixture
def coturn_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """coturn run from config/coturn.conf, its site lines (addresses, ports, certificate, secret)
    replaced for 127.0.0.1 and a certificate made here, which this process trusts; its TLS port."""
    if shutil.which("turnserver") is None:
        pytest.fail("coturn's turnserver is not installed (`make test` installs it)")
    cert, key = self_signed(tmp_path)  # (its names include 127.0.0.1)
    tls_port, relay = free_port(), free_udp_ports(20)
    site = {"listening-ip": "127.0.0.1", "listening-port": str(free_port()), "tls-listening-port": str(tls_port),
            "cert": str(cert), "pkey": str(key), "static-auth-secret": TURN_SECRET,
            "min-port": str(relay), "max-port": str(relay + 19), "log-file": "stdout"}
    lines = []
    for line in COTURN_CONF.read_text().splitlines():
        name = line.split("=", 1)[0]
        lines.append(f"{name}={site.pop(name)}" if name in site else line)
    assert not site, f"config/coturn.conf lacks {sorted(site)}"
    lines += ["relay-ip=127.0.0.1", "allow-loopback-peers", "allowed-peer-ip=127.0.0.1", f"pidfile={tmp_path / 'pid'}"]
    conf = tmp_path / "turnserver.conf"
    conf.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # aioice's TLS to the TURN server verifies it
    with open(tmp_path / "turnserver.log", "wb") as log:
        proc = subprocess.Popen(["turnserver", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: _tls_answers(proc, tls_port, cert), 10, "coturn's TLS port", interval=0.05)
            yield tls_port
        finally:
            proc.terminate()
            proc.wait(10)


def _tls_answers(proc: subprocess.Popen, port: int, cert: Path) -> bool:
    assert proc.poll() is None, "turnserver exited"
    context = ssl.create_default_context(cafile=str(cert))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1"):
            return True
    except OSError:
        return False


@dataclass
class CountingPoint:
    """A WHEP subscriber that counts the RTP packets it receives and decodes nothing (it still sends
    receiver reports: the server drops a point silent for ``consumer_timeout``)."""

    pc: RTCPeerConnection
    location: str = ""
    video: int = 0
    audio: int = 0

    @property
    def answer(self) -> str:
        return self.pc.remoteDescription.sdp


async def counting_point(url: str, conference: str, token: str, config: RTCConfiguration = NO_ICE) -> CountingPoint:
    pc = RTCPeerConnection(config)
    for kind in ("video", "audio"):
        pc.addTransceiver(kind, direction="recvonly")
    point = CountingPoint(pc)
    for transceiver in pc.getTransceivers():
        receiver = transceiver.receiver
        drop_frames(receiver)  # aiortc's receive statistics and reports go on, its decoder gets nothing

        async def count(packet, arrival_time_ms, kind=transceiver.kind, handle=receiver._handle_rtp_packet):  # type: ignore[no-untyped-def]
            setattr(point, kind, getattr(point, kind) + 1)
            await handle(packet, arrival_time_ms)
        receiver._handle_rtp_packet = count
    point.location = await negotiate(pc, f"{url}/whep/{conference}", token)
    return point


def media_stats(server: ServerProcess) -> dict:
    with server.admin() as client:
        return client.get("/api/v1/media/stats").json()


def binding_request(username: str, password: str) -> bytes:
    message = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    message.attributes["USERNAME"] = username
    message.attributes["PRIORITY"] = 1853824767
    message.attributes["ICE-CONTROLLING"] = 1
    message.add_message_integrity(password.encode())
    message.add_fingerprint()
    return bytes(message)


def signed_for(point: CountingPoint) -> bytes:
    """A Binding request from ``point``'s peer to the server, as its ICE agent would sign it."""
    ours, password = (re.search(rf"a=ice-{k}:(\S+)", point.answer).group(1) for k in ("ufrag", "pwd"))
    theirs = re.search(r"a=ice-ufrag:(\S+)", point.pc.localDescription.sdp).group(1)
    return binding_request(f"{ours}:{theirs}", password)


def answered(probe: socket.socket, request: bytes, port: int, wait: float = 0.5) -> bytes | None:
    """Send a STUN ``request`` to the server's ``port``; its answer within ``wait`` s (None: none).
    Other datagrams (the server's own checks towards the probe's address) are not answers."""
    probe.sendto(request, ("127.0.0.1", port))
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        probe.settimeout(left)
        try:
            data = probe.recvfrom(2048)[0]
        except TimeoutError:
            return None
        if data[8:20] == request[8:20]:  # its transaction id
            return data
    return None


def port_of(point: CountingPoint) -> int:
    (port,) = {p for _, p in candidate_ports(point.answer)}
    return port


async def test_a_speaker_and_50_points_on_one_udp_port_per_media_process(muxed):
    server, port = muxed
    conf = server.create_conference()
    speaker = await publish(server.url, conf, server.token(conf, "speaker"),
                            test_clip(seconds=6, width=320, height=180, kbps=300))
    points: list[CountingPoint] = []
    try:
        assert {p for _, p in candidate_ports(speaker.pc.remoteDescription.sdp)} == {port}
        tokens = [server.token(conf, "point", f"Xã {i}") for i in range(POINTS)]
        for first in range(0, POINTS, 10):  # ten at a time: the test process runs every peer's DTLS too
            points += await asyncio.gather(*(counting_point(server.url, conf, t) for t in tokens[first:first + 10]))
        await wait_until_async(lambda: [(p.pc.connectionState, p.video, p.audio) for p in points
                                        if p.video < 20 or p.audio < 10], 60,
                               "every point receiving video and audio", check=lambda lagging: not lagging,
                               interval=0.2)

        stats = media_stats(server)
        pids = {w["index"]: w["pid"] for w in stats["workers"]}
        assert sorted(pids) == list(range(MEDIA_PROCESSES))
        workers_of = {f"/whep/{conf}/{cid}": c["worker"] for cid, c in stats["consumers"].items()}
        assert set(workers_of.values()) == {1, 2}, "the points are spread over both workers"
        gone = [(p.location, p.pc.connectionState, p.video) for p in points
                if httpx.URL(p.location).path not in workers_of]
        assert not gone, f"points the server no longer has: {gone}"
        for point in points:
            path = httpx.URL(point.location).path
            ports = {p for _, p in candidate_ports(point.answer)}
            assert ports == {port + workers_of[path]}, (path, ports)
        (speaker_stats,) = [p for p in stats["producers"].values() if p["conference"] == conf]
        # the speaker's packets are read a burst at a time from the shared socket, as from its own
        assert speaker_stats["drain_datagrams"] >= speaker_stats["drain_wakeups"] > 0, speaker_stats
        for index, pid in pids.items():
            held = udp_sockets(pid)
            assert sorted(held.values()) == [port + index], f"media process {index} holds UDP sockets {held}"
        states = [p.pc.connectionState for p in points]
        assert states == ["connected"] * POINTS, states
        assert "Traceback" not in server.log_path.read_text(errors="replace")
    finally:
        await asyncio.gather(*(p.pc.close() for p in points))
        await speaker.close()


async def test_stun_for_unknown_usernames_gets_no_answer_and_harms_nobody(muxed):
    server, port = muxed
    conf = server.create_conference()
    speaker = await publish(server.url, conf, server.token(conf, "speaker"),
                            test_clip(seconds=6, width=320, height=180, kbps=300))
    point = await counting_point(server.url, conf, server.token(conf, "point", "Xã Tam Hồng"))
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        await wait_until_async(lambda: point.video, 20, "the point receiving", check=lambda n: n >= 20)
        answer = point.answer
        ufrag = re.search(r"a=ice-ufrag:(\S+)", answer).group(1)
        password = re.search(r"a=ice-pwd:(\S+)", answer).group(1)
        theirs = re.search(r"a=ice-ufrag:(\S+)", point.pc.localDescription.sdp).group(1)
        worker_port = port_of(point)
        dropped = {w["index"]: w["ice_sockets"][0]["dropped"] for w in media_stats(server)["workers"]}
        for target in range(port, port + MEDIA_PROCESSES):
            assert answered(probe, binding_request("nobody0000000000:them", "x" * 22), target) is None
            probe.sendto(b"\x80\x60" + bytes(200), ("127.0.0.1", target))  # RTP-looking, from an unknown address
        assert answered(probe, binding_request(f"{ufrag}:{theirs}", "wrong password 000000"), worker_port) is None
        sockets = {w["index"]: w["ice_sockets"] for w in media_stats(server)["workers"]}
        for index, (shared,) in sockets.items():  # one socket each, and it dropped them all
            assert shared["port"] == port + index
            assert shared["dropped"] - dropped[index] >= 2 + (shared["port"] == worker_port), sockets
        # signed with the point's password, a request from a new address reaches its connection
        reply = answered(probe, binding_request(f"{ufrag}:{theirs}", password), worker_port, wait=2.0)
        assert reply is not None and stun.parse_message(reply).message_class == stun.Class.RESPONSE

        # ICE consent both ways still goes through the shared socket (a check about every 5 s)
        await wait_until_async(lambda: media_stats(server)["consumers"], 20, "consent checked both ways",
                               check=lambda consumers: all(c.get("consent_answered", 0) >= 1
                                                           and c["consent_checks"]["answered"] >= 1
                                                           for c in consumers.values()), interval=0.5)
        received = point.video
        await wait_until_async(lambda: point.video, 10, "the point still receiving", check=lambda n: n >= received + 20)
        later = [await counting_point(server.url, conf, server.token(conf, "point", f"Xã Mới {i}")) for i in range(2)]
        try:
            for sub in later:
                await wait_until_async(lambda: sub.video, 20, "a new point receiving", check=lambda n: n >= 20)
            # Of three points on two workers, two share a socket. The probe's address belongs to the
            # first of them once a request signed for it came; a request for an unknown username
            # from it is still ignored, one signed for the other moves the address there.
            sharing: dict[int, list[CountingPoint]] = {}
            for sub in [point, *later]:
                sharing.setdefault(port_of(sub), []).append(sub)
            shared_port, (a, b, *_) = next((p, subs) for p, subs in sharing.items() if len(subs) > 1)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mover:
                assert answered(mover, signed_for(a), shared_port, 2.0) is not None
                assert answered(mover, binding_request(f"nobody0000000000:{theirs}", password), shared_port) is None
                reply = answered(mover, signed_for(b), shared_port, 2.0)
                assert reply is not None and stun.parse_message(reply).message_class == stun.Class.RESPONSE
        finally:
            await asyncio.gather(*(sub.pc.close() for sub in later))
        assert "Traceback" not in server.log_path.read_text(errors="replace")
    finally:
        probe.close()
        await point.pc.close()
        await speaker.close()


async def test_a_point_that_can_only_reach_turn_over_tls_watches_through_coturn(muxed, coturn_tls):
    """A point on a network that lets only TCP/TLS out: relay-only through coturn (config/coturn.conf)
    over TLS, with the short-lived credentials the server would hand out; our side is the shared socket."""
    server, port = muxed
    conf = server.create_conference()
    speaker = await publish(server.url, conf, server.token(conf, "speaker"),
                            test_clip(seconds=6, width=320, height=180, kbps=300))
    username, credential = rest_credentials(TURN_SECRET, 600, "point-behind-a-firewall")
    relay_only = RTCConfiguration(
        iceServers=[RTCIceServer(urls=f"turns:127.0.0.1:{coturn_tls}?transport=tcp", username=username,
                                 credential=credential)],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY)
    point = await counting_point(server.url, conf, server.token(conf, "point", "Xã biên giới"), relay_only)
    try:
        assert {line.split(" typ ")[1].split()[0] for line in point.pc.localDescription.sdp.splitlines()
                if line.startswith("a=candidate:")} == {"relay"}
        assert port_of(point) in range(port + 1, port + MEDIA_PROCESSES)
        await wait_until_async(lambda: point.video, 30, "the relayed point receiving", check=lambda n: n >= 20)
        assert point.audio > 0
    finally:
        await point.pc.close()
        await speaker.close()


def test_a_port_in_use_is_refused_by_name(muxed) -> None:
    """ICE_UDP_PORT already taken (here: by the running server's ingest): the start fails saying so."""
    _, port = muxed
    with pytest.raises(OSError, match=f"cannot bind the ICE UDP port {port} on 127.0.0.1"):
        UdpMux("127.0.0.1", port)
