"""Batched sends (media workers): packets queued per wake-up leave per subscriber in a few calls.

UDP GSO hands the kernel one buffer per run of equal-sized packets and the receiver still gets one
datagram per RTP packet; sendmmsg and per-packet sendto are the fallbacks. Every mode must deliver
exactly what the unbatched loop delivers: same packets, same order, same headers, SRTP intact.
"""

from __future__ import annotations

import socket

import pytest

from media import fanout
from media.outbound import OutboundStream
from media.router import Router
from media.source import SourceStream
from tests.test_router_switch import IDR, P_SLICE, Receiver, outbound_session

pytestmark = pytest.mark.skipif(not fanout.enabled(), reason="media._fastpath not built")


@pytest.fixture
def send_mode():
    before = fanout.send_mode()
    yield fanout.send_mode
    fanout.send_mode(before)


def _subscriber(router: Router, ssrc: int) -> tuple[OutboundStream, Receiver, socket.socket]:
    rx = Receiver()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stream = OutboundStream("video", ssrc, {"video/h264": 102}, 90000)
    stream.bind(outbound_session(), tx.sendto, rx.sock.getsockname(), tx.fileno())
    router.add_outbound(stream)
    return stream, rx, tx


def _frame(seq: int, ts: int, sizes: list[int], key: bool = False) -> list[tuple[int, int, int, bytes]]:
    """One video frame as RTP payloads of the given sizes (distinct bytes, so mix-ups show)."""
    out = []
    for i, size in enumerate(sizes):
        head = IDR if key and i == 0 else P_SLICE
        body = bytes((seq + i + j) & 0xFF for j in range(size - len(head)))
        out.append(((seq + i) & 0xFFFF, ts, int(i == len(sizes) - 1), head + body))
    return out


@pytest.mark.parametrize("mode", ["gso", "sendmmsg", "sendto"])
def test_batches_deliver_what_single_sends_do(send_mode, mode: str) -> None:
    send_mode(mode)
    router = Router("c1", keyframe_interval=0.0)
    router.batched = True
    src = SourceStream("video", "video/h264", 90000)
    router.add_source(src)
    subs = [_subscriber(router, 5000 + i) for i in range(3)]
    router.on_rtp(src, 100, 9000, 1, IDR + b"key")  # Python path: first packet, then the C loop
    for stream, rx, _ in subs:
        assert rx.read(1)[0][1] == (100 + stream.seq_off) & 0xFFFF
        assert stream.fast
    # Runs GSO must split: equal sizes, a shorter closer, a larger one, a lone packet, sizes going up.
    sizes = [1100, 1100, 1100, 1099, 1200, 1200, 300, 301, 302, 1200]
    packets = _frame(101, 12000, sizes)
    for seq, ts, marker, payload in packets:
        router.on_rtp(src, seq, ts, marker, payload)
    for _, rx, _ in subs:
        assert rx.empty()  # queued, not sent, until the batch is flushed
    router.flush()
    for stream, rx, _ in subs:
        got = rx.read(len(packets))
        assert [(pt, seq, ts, payload) for pt, seq, ts, payload in got] == [
            (102, (seq + stream.seq_off) & 0xFFFF, (ts + stream.ts_off) & 0xFFFFFFFF, payload)
            for seq, ts, _, payload in packets
        ]
        assert rx.empty()
        assert stream.packets == 1 + len(packets) and stream.drops == 0
    assert fanout.send_mode() == mode  # loopback takes GSO: no fallback happened
    for stream, rx, tx in subs:
        router.remove_outbound(stream)
        assert (stream.last_seq, stream.last_ts) == (110, 12000)  # read back from the C target
        tx.close()
        rx.sock.close()


def test_a_full_batch_is_sent_without_waiting_for_flush(send_mode) -> None:
    send_mode("gso")
    router = Router("c1", keyframe_interval=0.0)
    router.batched = True
    src = SourceStream("video", "video/h264", 90000)
    router.add_source(src)
    stream, rx, tx = _subscriber(router, 6000)
    router.on_rtp(src, 1, 0, 1, IDR + b"key")
    rx.read(1)
    packets = _frame(2, 3000, [1000] * (fanout.BATCH + 3))
    for seq, ts, marker, payload in packets:
        router.on_rtp(src, seq, ts, marker, payload)
    assert [p[1] for p in rx.read(fanout.BATCH)] == [(s + stream.seq_off) & 0xFFFF for s, *_ in packets[: fanout.BATCH]]
    assert rx.empty()
    router.flush()
    assert len(rx.read(3)) == 3
    router.remove_outbound(stream)
    tx.close()
    rx.sock.close()


def test_membership_changes_flush_first(send_mode) -> None:
    """Queued packets go to the streams they were queued for: a joiner does not get them twice."""
    send_mode("gso")
    router = Router("c1", keyframe_interval=0.0)
    router.batched = True
    src = SourceStream("video", "video/h264", 90000)
    router.add_source(src)
    first, rx1, tx1 = _subscriber(router, 7000)
    router.on_rtp(src, 1, 0, 1, IDR + b"key")
    rx1.read(1)
    router.on_rtp(src, 2, 3000, 1, P_SLICE + b"a")  # queued for `first`
    second, rx2, tx2 = _subscriber(router, 7001)  # joins: waits for a keyframe on the Python path
    router.on_rtp(src, 3, 6000, 1, IDR + b"b")  # queued for `first`; sent to `second` in Python
    assert [p[3] for p in rx2.read(1)] == [IDR + b"b"] and second.fast  # and now in the C set
    assert [p[3] for p in rx1.read(1)] == [P_SLICE + b"a"]  # flushed when `second` joined
    router.on_rtp(src, 4, 9000, 1, P_SLICE + b"c")
    router.flush()
    assert [p[3] for p in rx1.read(2)] == [IDR + b"b", P_SLICE + b"c"]
    assert [p[3] for p in rx2.read(1)] == [P_SLICE + b"c"] and rx2.empty()
    router.remove_outbound(first)
    router.on_rtp(src, 5, 12000, 1, P_SLICE + b"d")
    router.flush()
    assert [p[3] for p in rx2.read(1)] == [P_SLICE + b"d"] and rx1.empty()
    router.remove_outbound(second)
    for sock in (tx1, tx2, rx1.sock, rx2.sock):
        sock.close()
