"""The ingest's mirror of the speaker's packets to the media workers cannot be fed by anyone else.

The workers used to read their mirror from a UDP port on 127.0.0.1: any local process could send a
burst there (media.sharding.channel's format is simple) and have it forwarded to every point as the speaker's
media. Now the mirror is a socketpair the worker inherits; the worker holds no UDP socket but its
points' ICE sockets, and whatever a local process sends to any of its ports reaches no point.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from media.sharding.channel import bursts, pack_packet
from bench.clip import test_clip
from bench.whip_publisher import publish
from tests.support.peers import subscribe
from tests.support.server import ServerFactory, ServerProcess

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out

MARK = b"INJECTED-BY-A-LOCAL-PROCESS" * 8


@pytest.fixture(scope="module")
def sharded(start_server: ServerFactory) -> Iterator[ServerProcess]:
    """A server of our own (ingest + 2 workers), so every UDP socket its workers hold is ours to explain."""
    with start_server("mirror", workers=3) as srv:
        yield srv


def udp_ports(pid: int) -> set[int]:
    """The local ports of the UDP sockets process ``pid`` holds (IPv4 and IPv6)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        match = re.fullmatch(r"socket:\[(\d+)\]", target)
        if match:
            inodes.add(match.group(1))
    ports = set()
    for table in ("udp", "udp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def candidate_ports(sdp: str) -> set[int]:
    return {int(m.group(1)) for m in re.finditer(r"a=candidate:\S+ \d+ udp \d+ \S+ (\d+) typ", sdp, re.I)}


def forged_bursts(seq: int) -> list[bytes]:
    """The mirror's datagrams for every plausible source id, each packet carrying MARK."""
    packets = [pack_packet(source_id, (seq + n) & 0xFFFF, 12345 + n, 1, False, MARK)
               for source_id in range(1, 300) for n in range(3)]
    return [datagram for datagram, _ in bursts(packets)]


def watch_payloads(sub, seen: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    for transceiver in sub.pc.getTransceivers():
        receiver = transceiver.receiver
        original = receiver._handle_rtp_packet

        async def handle(packet, arrival_time_ms, original=original):  # type: ignore[no-untyped-def]
            if MARK[:16] in packet.payload:
                seen.append(packet.payload)
            await original(packet, arrival_time_ms)

        receiver._handle_rtp_packet = handle


async def test_a_local_process_cannot_inject_media_into_a_worker(sharded):
    server = sharded
    conf = server.create_conference()
    pub = await publish(server.url, conf, server.token(conf, "speaker"), test_clip())
    subs = [await subscribe(server.url, conf, server.token(conf, "point", f"Xã {i}")) for i in range(2)]
    seen: list[bytes] = []
    try:
        for sub in subs:
            watch_payloads(sub, seen)
        for sub in subs:
            assert await sub.wait_frames(30, timeout=20), f"only {sub.frames} frames"
        with server.admin() as c:
            stats = c.get("/api/v1/media/stats").json()
        assert {v["worker"] for v in stats["consumers"].values()} == {1, 2}  # one point on each worker
        workers = [w["pid"] for w in stats["workers"][1:]]
        ice = set().union(*(candidate_ports(sub.pc.remoteDescription.sdp) for sub in subs))
        held = {pid: udp_ports(pid) for pid in workers}
        # A local process sends forged mirror bursts to every UDP port the workers hold, with
        # sequence numbers all over the range: none of it may reach a point.
        attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for seq in range(0, 65536, 4096):
                for port in sorted(set().union(*held.values())):
                    for datagram in forged_bursts(seq):
                        attacker.sendto(datagram, ("127.0.0.1", port))
                await asyncio.sleep(0.05)
        finally:
            attacker.close()
        frames = [sub.frames for sub in subs]
        await asyncio.sleep(1.5)
        assert not seen, f"{len(seen)} injected packets reached the points"
        assert all(held.values()) and all(ports <= ice for ports in held.values()), (
            f"a worker holds UDP sockets that are not its points' ICE sockets: {held}, ICE {ice}")
        # the real relay still delivers to the points on both workers
        for sub, before in zip(subs, frames):
            assert await sub.wait_frames(before + 20, timeout=10), f"{sub.frames} frames, {before} before"
        async with httpx.AsyncClient(timeout=5) as client:
            assert (await client.get(f"{server.url}/healthz")).status_code == 200
        assert "Traceback" not in server.log_path.read_text(errors="replace")
    finally:
        for sub in subs:
            await sub.close()
        await pub.close()
