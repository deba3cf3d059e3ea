"""A point's ICE socket connected to its nominated peer (media.transport.pinned_path).

The C loop then sends without an address; the kernel drops datagrams from anyone else; an ICMP
port-unreachable reported on the connected socket is counted as a drop, not taken as the point's end.
"""

from __future__ import annotations

import socket
import time

import pytest

from media.egress import fanout
from media.transport import pinned_path
from media.egress.fanout_group import FanoutGroup
from media.egress.outbound import OutboundStream
from media.core.router import Router
from media.core.source import SourceStream
from tests.test_router_switch import IDR, P_SLICE, Receiver, outbound_session

pytestmark = pytest.mark.skipif(not fanout.enabled(), reason="media.native._fastpath not built")


def _udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


def _recv_all(sock: socket.socket, wait: float = 0.3) -> list[tuple[bytes, tuple]]:
    got, deadline = [], time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            got.append(sock.recvfrom(2048))
        except BlockingIOError:
            time.sleep(0.01)
    return got


def test_a_pinned_socket_hears_only_its_peer() -> None:
    ours, peer, stranger = _udp(), _udp(), _udp()
    try:
        assert not pinned_path.is_pinned(ours, peer.getsockname())
        assert pinned_path.pin(ours, peer.getsockname())
        assert pinned_path.is_pinned(ours, peer.getsockname())
        assert not pinned_path.is_pinned(ours, stranger.getsockname())
        stranger.sendto(b"stranger", ours.getsockname())
        peer.sendto(b"peer", ours.getsockname())
        assert [d for d, _ in _recv_all(ours)] == [b"peer"]
        ours.sendto(b"named", peer.getsockname())  # aioice and SRs still name the address: accepted
        ours.send(b"unnamed")
        assert [d for d, _ in _recv_all(peer)] == [b"named", b"unnamed"]
    finally:
        for s in (ours, peer, stranger):
            s.close()


def test_pin_refuses_what_it_cannot_connect() -> None:
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert not pinned_path.pin(tcp, ("127.0.0.1", 9))  # ICE-TCP: left alone
        assert not pinned_path.pin(udp, ("::1", 9))  # an IPv6 peer on an IPv4 socket
        assert not pinned_path.is_pinned(udp, ("::1", 9))
    finally:
        tcp.close()
        udp.close()


@pytest.mark.parametrize("batched", [False, True], ids=["packet", "frames of three runs"])
def test_a_closed_point_costs_drops_not_the_consumer(batched: bool) -> None:
    """With the point's socket gone, sends on the pinned socket meet ECONNREFUSED (the kernel
    reports the ICMP port-unreachable there): the C loop and the Python path count drops and
    keep the stream; deciding that the point has left is RTCP's and ICE consent's job. Batched,
    a frame's runs leave in one sendmmsg; when it fails the runs go one call each (each counted
    once, sent or dropped)."""
    router = Router("p1", FanoutGroup, keyframe_interval=0.0)
    rx = Receiver()
    tx = _udp()
    stream = OutboundStream("video", 7000, {"video/h264": 102}, 90000)
    stream.bind(outbound_session(), tx.sendto, rx.sock.getsockname(), tx.fileno())
    assert pinned_path.pin(tx, rx.sock.getsockname())
    stream.path_pinned()
    failures: list[int] = []
    stream.on_failure = lambda: failures.append(1)
    router.add_outbound(stream)
    src = SourceStream("video", "video/h264", 90000)
    router.add_source(src)
    try:
        router.on_rtp(src, 1, 0, 1, IDR + b"key")  # Python path
        router.on_rtp(src, 2, 3000, 1, P_SLICE + b"x" * 800)  # C loop
        assert stream.fast and len(rx.read(2)) == 2
        rx.sock.close()
        router.batched = batched
        sizes = [40, 800, 800, 500] if batched else [800]  # batched: three GSO runs per frame
        seq = 3
        for n in range(20):
            for i, size in enumerate(sizes):
                router.on_rtp(src, seq, 3000 * n, int(i == len(sizes) - 1), P_SLICE + bytes([n]) * size)
                seq += 1
            router.flush()
            time.sleep(0.002)  # let the ICMP come back between sends
        assert stream.drops > 0 and stream.packets + stream.drops == seq - 1
        assert failures == []
        assert stream in router.groups["video"].c_set.members
    finally:
        router.remove_outbound(stream)
        tx.close()
