"""The load generator's C receive loop counts exactly what its Python loop counts.

Both loops are fed the same packets (in order, with gaps, duplicates, late repairs, a sequence
wrap, packets before and inside the measurement window) and must agree on every counter, on the
NACKs they send and on the delay histogram. Both run over a real UDP socket on 127.0.0.1, so the
C loop's recvmmsg and kernel timestamps are part of what is checked.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from typing import Any

import pytest

from bench import loadgen, rx

pytestmark = pytest.mark.skipif(not rx.AVAILABLE, reason="bench._rxfast not built (make test builds it)")

VIDEO_SSRC = 0x11223344


class _Dtls:
    _rx_srtp = None  # keyframe checks decrypt nothing here
    _tx_srtp = None  # NACKs are counted, not sent


def _packets(t0: float) -> list[tuple[float, bytes]]:
    """(arrival, packet): ~400 video packets across a sequence wrap, with loss, duplicates, late
    repairs and stale duplicates; delays from -2 ms (a clock step: counted as negative) to 2.5 s."""
    seqs: list[int] = []
    seq = 65400
    for i in range(400):
        if i % 37 == 5:  # lost for now ...
            seq = (seq + 1) & 0xFFFF
            continue
        seqs.append(seq)
        if i % 53 == 7:
            seqs.append(seq)  # duplicate
        if i % 37 == 9:
            seqs.append((seq - 4) & 0xFFFF)  # ... repaired a few packets later
        if i == 300:
            seq = (seq + 100) & 0xFFFF  # a gap too long to NACK
        seq = (seq + 1) & 0xFFFF
    seqs += [(65400 + 120 + k) & 0xFFFF for k in range(3)]  # stale duplicates at the end
    out = []
    for k, s in enumerate(seqs):
        frame = ((s - 65400) & 0xFFFF) // 7
        ts = (1000 + frame * 3000) & 0xFFFFFFFF
        marker = 0x80 if s % 7 == 6 else 0
        header = struct.pack("!BBHII", 0x80, marker | 102, s, ts, VIDEO_SSRC)
        sent = t0 + frame * 3000 / 90000
        delay = (k % 50) * 0.0005 - 0.002 if k % 97 else 2.5
        out.append((sent + delay, header + bytes(100 + k % 50)))
    return out


async def _run(mode: str, packets: list[tuple[float, bytes]], t0: float) -> dict[str, Any]:
    os.environ["DIEMCAU_BENCH_RX"] = mode
    try:
        gen = loadgen.LoadGen()
    finally:
        os.environ.pop("DIEMCAU_BENCH_RX", None)
    assert (gen.crx is not None) == (mode == "c")
    sub = loadgen.Subscriber(gen, 0, "")
    sub.dtls = _Dtls()
    sub.sdp_kinds = {VIDEO_SSRC: "video"}
    gen.subs = [sub]
    # The window and the clock mapping, as the "window" op and the SR handling set them.
    gen.window.kinds = {"video": (t0 + 0.1, t0 + 3600), "audio": (t0, t0 + 3600)}
    gen.window.arrival = (t0 + 0.05, t0 + 3600)
    if gen.crx is not None:
        gen.crx.set_arrival_window(*gen.window.arrival)
        sub.csock = gen.crx.add_socket(1000)
    st = sub._stream(VIDEO_SSRC, 102)
    st.ref_rtp, st.base, st.last_ts = 1000, t0, -1
    st.w0, st.w1 = gen.window.kinds["video"]
    if gen.crx is not None:
        for arrival, data in packets:
            gen.crx.packet(sub.csock, data, arrival)
            for event in gen.crx.events():
                gen.on_event(*event)
        hist = gen.crx.hist_counts(gen.chist["video"], loadgen.HIST_BINS + 1)
        negative = gen.crx.negative_delays
    else:
        handle = sub._make_rtp_handler()
        for arrival, data in packets:
            handle(data, 0, len(data), arrival)
        hist, negative = gen.hist["video"], gen.negative_delays
    return {
        "result": st.result(),
        "report": loadgen.receiver_info(st),
        "long_gaps": gen.long_gaps,
        "hist": list(hist),
        "negative": negative,
    }


async def test_c_loop_counts_like_the_python_loop() -> None:
    t0 = time.time() - 60.0
    packets = _packets(t0)
    py = await _run("python", packets, t0)
    c = await _run("c", packets, t0)
    assert c["result"] == py["result"]
    assert (c["report"].packets_lost, c["report"].highest_sequence) == (
        py["report"].packets_lost, py["report"].highest_sequence)
    assert c["long_gaps"] == py["long_gaps"] == 1
    assert c["negative"] == py["negative"] > 0
    assert c["hist"] == py["hist"]
    assert sum(c["hist"]) == c["result"]["win_unique"] > 0
    assert c["hist"][-1] > 0  # the 2.5 s ones: the overflow bin
    # and the counts are the ones the packet list implies
    r = c["result"]
    assert r["rx"] == len(packets) and r["unique"] + r["dups"] == len(packets)
    assert r["dups"] > 0 and r["repaired"] > 0 and r["nacks"] > 0 and r["rx_win"] < r["rx"]


def _c_subscriber(gro: bool = False) -> tuple[Any, Any, socket.socket, list[tuple[bytes, Any]]]:
    """A load generator with one video subscriber on a real socket that the C loop reads; what is
    not RTP lands in the returned list (aioice's handler in the load generator)."""
    gen = loadgen.LoadGen()
    assert gen.crx is not None
    sub = loadgen.Subscriber(gen, 0, "")
    sub.dtls = _Dtls()
    sub.sdp_kinds = {VIDEO_SSRC: "video"}
    rx_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx_sock.bind(("127.0.0.1", 0))
    rx_sock.setsockopt(socket.SOL_SOCKET, loadgen.SO_TIMESTAMPNS, 1)
    rx_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    if gro:
        rx_sock.setsockopt(loadgen.SOL_UDP, loadgen.UDP_GRO, 1)
    fd = rx_sock.fileno()
    other: list[tuple[bytes, Any]] = []
    sub.csock = gen.crx.add_socket(fd, gro=gro)
    gen.by_fd[fd] = (sub, lambda data, addr: other.append((data, addr)))
    gen.epoll.register(fd, 1)
    return gen, sub, rx_sock, other


async def test_c_loop_reads_a_real_socket() -> None:
    """recvmmsg over every ready socket; kernel arrival times; non-RTP goes to aioice's handler."""
    gen, sub, rx_sock, other = _c_subscriber()
    fd = rx_sock.fileno()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.bind(("127.0.0.1", 0))
    arrivals: list[float] = []

    def on_event(kind: int, *rest: Any) -> None:
        arrivals.append(rest[3])
        gen.on_event(kind, *rest)

    count = 300  # more than one recvmmsg batch
    try:
        before = time.time()
        for k in range(count):
            tx.sendto(struct.pack("!BBHII", 0x80, 102, k, 1000 + k // 7 * 3000, VIDEO_SSRC) + bytes(200),
                      rx_sock.getsockname())
        tx.sendto(b"\x00\x01stun-like", rx_sock.getsockname())
        await asyncio.sleep(0.05)
        gen.crx.drain_all(gen.epoll.fileno(), on_event)
        after = time.time()
    finally:
        gen.remove_socket(fd)
        rx_sock.close()
    tx_name = tx.getsockname()
    tx.close()
    st = sub.streams[VIDEO_SSRC]  # created by the unknown-SSRC event, then counted in C
    assert st.result()["rx"] == count and st.result()["unique"] == count
    assert other == [(b"\x00\x01stun-like", tx_name)]
    assert arrivals and all(before <= a <= after for a in arrivals)  # kernel receive timestamps
    assert st.result()["unmapped"] == 0 and st.result()["win_unique"] == 0  # no window yet


async def test_c_loop_splits_what_udp_gro_coalesced() -> None:
    """With UDP_GRO on a subscriber socket, a sender's GSO send arrives as one buffer; the C loop
    cuts it back into the datagrams the sender made (equal ones, a shorter last) and counts each."""
    gen, sub, rx_sock, other = _c_subscriber(gro=True)
    fd = rx_sock.fileno()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    seq, sends = 0, 0
    try:
        for burst in range(20):  # 20 GSO sends of 1..40 packets: 400 bytes each, the last 150
            size = 1 + (burst * 7) % 40
            datagrams = []
            for i in range(size):
                body = bytes(400 - 12) if i < size - 1 or size == 1 else bytes(150 - 12)
                datagrams.append(struct.pack("!BBHII", 0x80, 102, seq, 3000 * burst, VIDEO_SSRC) + body)
                seq += 1
            tx.sendmsg(datagrams, [(17, 103, struct.pack("=H", 400))], 0, rx_sock.getsockname())  # UDP_SEGMENT
            sends += 1
        tx.sendto(b"\x00\x01stun-like", rx_sock.getsockname())
        await asyncio.sleep(0.05)
        gen.crx.drain_all(gen.epoll.fileno(), gen.on_event)
    finally:
        gen.remove_socket(fd)
        rx_sock.close()
        tx.close()
    r = sub.streams[VIDEO_SSRC].result()
    assert r["rx"] == seq and r["unique"] == seq and r["dups"] == 0  # every datagram, once, in order
    assert len(other) == 1 and other[0][0] == b"\x00\x01stun-like"
    assert 0 < gen.crx.g.gro_buffers <= sends  # the kernel did coalesce: the splitting was exercised
