"""Batched sends (media workers): packets queued per wake-up leave per subscriber in a few calls.

UDP GSO hands the kernel one buffer per run of equal-sized packets and the receiver still gets one
datagram per RTP packet; sendmmsg and per-packet sendto are the fallbacks. Every mode must deliver
exactly what the unbatched loop delivers: same packets, same order, same headers, SRTP intact.
"""

from __future__ import annotations

import socket

import pytest

from media.egress import fanout
from media.transport import pinned_path
from media.sharding.channel import bursts, pack_packet, unpack_burst
from media.egress.fanout_group import FanoutGroup
from media.egress.outbound import OutboundStream
from media.core.router import Router
from media.core.source import SourceStream
from media.sharding.pool import WorkerPool, mirror_socketpair
from tests.test_router_switch import IDR, P_SLICE, Receiver, outbound_session

pytestmark = pytest.mark.skipif(not fanout.enabled(), reason="media.native._fastpath not built")


@pytest.fixture
def send_mode():
    before = fanout.send_mode()
    yield fanout.send_mode
    fanout.send_mode(before)


def _subscriber(router: Router, ssrc: int, pinned: bool = False) -> tuple[OutboundStream, Receiver, socket.socket]:
    rx = Receiver()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # with RTX, as browsers and aiortc negotiate it: only such streams may be padded (media.egress.outbound)
    stream = OutboundStream("video", ssrc, {"video/h264": 102}, 90000, {102: 103}, ssrc + 1)
    stream.bind(outbound_session(), tx.sendto, rx.sock.getsockname(), tx.fileno())
    if pinned:  # connected to the point; the C loop then sends without an address (media.transport.pinned_path)
        assert pinned_path.pin(tx, rx.sock.getsockname())
        stream.path_pinned()
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


def _batched_router() -> tuple[Router, SourceStream]:
    router = Router("c1", FanoutGroup, keyframe_interval=0.0)
    router.batched = True
    src = SourceStream("video", "video/h264", 90000)
    router.add_source(src)
    return router, src


def _send(router: Router, src: SourceStream, packets: list[tuple[int, int, int, bytes]]) -> None:
    for seq, ts, marker, payload in packets:
        router.on_rtp(src, seq, ts, marker, payload)


@pytest.mark.parametrize("pinned", [False, True], ids=["address", "pinned"])
@pytest.mark.parametrize("mode", ["gso", "sendmmsg", "sendto"])
def test_batches_deliver_what_single_sends_do(send_mode, mode: str, pinned: bool) -> None:
    send_mode(mode)
    router, src = _batched_router()
    subs = [_subscriber(router, 5000 + i, pinned) for i in range(3)]
    router.on_rtp(src, 100, 9000, 1, IDR + b"key")  # Python path: first packet, then the C loop
    for stream, rx, _ in subs:
        assert rx.read(1)[0][1] == (100 + stream.seq_off) & 0xFFFF
        assert stream.fast
    # Runs GSO must split: equal sizes, a shorter closer, a larger one, a lone packet, sizes going up.
    sizes = [1100, 1100, 1100, 1099, 1200, 1200, 300, 301, 302, 1200]
    packets = _frame(101, 12000, sizes)
    _send(router, src, packets)
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


@pytest.fixture
def runs_together():
    before = fanout.runs_together()
    yield fanout.runs_together
    fanout.runs_together(before)


@pytest.mark.parametrize("pinned", [False, True], ids=["address", "pinned"])
def test_a_batchs_gso_runs_leave_in_one_call(send_mode, runs_together, pinned: bool) -> None:
    """A frame of a small NAL unit and two slices of different sizes is three GSO runs; they leave
    in one sendmmsg per point, or in three calls when that is turned off, with the same datagrams."""
    send_mode("gso")
    router, src = _batched_router()
    subs = [_subscriber(router, 6600 + i, pinned) for i in range(2)]
    router.on_rtp(src, 1, 0, 1, IDR + b"key")
    for _, rx, _ in subs:
        rx.read(1)
    seq = 2
    for together, calls in ((True, 1), (False, 3)):
        runs_together(together)
        packets = _frame(seq, 3000 * seq, [40, 1152, 1152, 1152, 1047, 1047])  # runs: 1 | 3+1 | 1
        seq += len(packets)
        before = [(stream.sends, stream.runs) for stream, _, _ in subs]
        _send(router, src, packets)
        router.flush()
        for (stream, rx, _), (sends, runs) in zip(subs, before):
            got = rx.read(len(packets))
            assert [(s, p) for _, s, _, p in got] == [((s + stream.seq_off) & 0xFFFF, p) for s, _, _, p in packets]
            assert rx.empty()
            assert (stream.sends - sends, stream.runs - runs) == (calls, 3), together
    assert all(stream.drops == 0 and stream.packets == seq - 1 for stream, _, _ in subs)
    for stream, rx, tx in subs:
        router.remove_outbound(stream)
        tx.close()
        rx.sock.close()


@pytest.fixture
def pad_max():
    before = fanout.pad_max()
    yield fanout.pad_max
    fanout.pad_max(before)


@pytest.mark.parametrize("sizes", [[1001, 1001, 1000, 1000], [1000, 1000, 1001, 1001], [996, 1000, 999, 1003]])
def test_padding_evens_out_a_frame_into_one_gso_send(send_mode, pad_max, sizes: list[int]) -> None:
    """Packetizers split a NAL unit one byte apart (aiortc longer first, libwebrtc longer last): a
    few bytes of RTP padding make it one GSO run; the receiver strips them and gets the payloads."""
    send_mode("gso")
    router, src = _batched_router()
    stream, rx, tx = _subscriber(router, 6200)
    router.on_rtp(src, 1, 0, 1, IDR + b"key")
    rx.read(1)
    for limit in (8, 0):
        pad_max(limit)
        base = stream.runs
        seq = 2 if limit else 12
        packets = _frame(seq, 3000 * seq, sizes)
        _send(router, src, packets)
        router.flush()
        got, raws = [], []
        for _ in packets:
            got += rx.read(1)
            raws.append(rx.last_raw)
        assert [p for *_, p in got] == [p for *_, p in packets]
        assert [s for _, s, _, _ in got] == [(s + stream.seq_off) & 0xFFFF for s, *_ in packets]
        overhead = {len(r) - n for r, n in zip(raws, sizes)}  # header + SRTP tag, + padding if any
        if limit:  # one run: every datagram has the largest packet's size, the others are padded
            assert {len(r) for r in raws} == {len(raws[sizes.index(max(sizes))])}
            assert len(overhead) == len(set(sizes))
            assert stream.runs - base == 1
        else:
            assert len(overhead) == 1
            assert stream.runs - base >= 2
    assert stream.drops == 0 and rx.empty()
    router.remove_outbound(stream)
    tx.close()
    rx.sock.close()


def test_a_full_batch_is_sent_without_waiting_for_flush(send_mode) -> None:
    send_mode("gso")
    router, src = _batched_router()
    stream, rx, tx = _subscriber(router, 6000)
    router.on_rtp(src, 1, 0, 1, IDR + b"key")
    rx.read(1)
    packets = _frame(2, 3000, [1000] * (fanout.BATCH + 3))
    _send(router, src, packets)
    assert [p[1] for p in rx.read(fanout.BATCH)] == [(s + stream.seq_off) & 0xFFFF for s, *_ in packets[: fanout.BATCH]]
    assert rx.empty()
    router.flush()
    assert len(rx.read(3)) == 3
    router.remove_outbound(stream)
    tx.close()
    rx.sock.close()


def test_the_c_loop_sends_batches_larger_than_its_slots_in_order(send_mode) -> None:
    """fp_forward_batch holds 64 packets; a longer batch goes out in order, a slot-full at a time."""
    send_mode("gso")
    router, src = _batched_router()
    stream, rx, tx = _subscriber(router, 6100)
    router.on_rtp(src, 1, 0, 1, IDR + b"key")
    rx.read(1)
    packets = _frame(2, 3000, [900] * 70)
    router.groups["video"].c_set._queued.extend(packets)  # past queue()'s own limit, straight to the C call
    router.flush()
    assert [p[1] for p in rx.read(70)] == [(s + stream.seq_off) & 0xFFFF for s, *_ in packets]
    assert rx.empty() and stream.packets == 71
    router.remove_outbound(stream)
    tx.close()
    rx.sock.close()


def test_membership_changes_flush_first(send_mode) -> None:
    """Queued packets go to the streams they were queued for: a joiner does not get them twice."""
    send_mode("gso")
    router, src = _batched_router()
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


def test_mirror_to_workers_sends_a_burst_as_one_datagram(tmp_path) -> None:
    """The ingest's mirror of a burst: one datagram per worker holding every packet, in order; a
    burst larger than a datagram holds (a keyframe) takes several, none lost."""
    pool = WorkerPool(0, None)
    pairs = [mirror_socketpair() for _ in range(2)]  # (the ingest's end, the worker's)
    workers = [theirs for _, theirs in pairs]
    for w in workers:
        w.settimeout(1.0)
    router, src = _batched_router()
    pool.attach(router)
    pool._targets = {router.conference_id: [ours for ours, _ in pairs]}
    frame = _frame(1, 3000, [6, 1100, 1100, 1099, 700, 1200, 1200])
    keyframe = _frame(1 + len(frame), 6000, [1180] * 120, key=True)  # ~140 KB: three datagrams
    for packets, datagrams in ((frame, 1), (keyframe, 3)):
        _send(router, src, packets)
        workers[0].settimeout(0.05)
        with pytest.raises(TimeoutError):
            workers[0].recv(65536)  # held until the burst ends
        workers[0].settimeout(1.0)
        sends = pool.mirror_sends
        router.flush()
        assert pool.mirror_sends - sends == datagrams * len(workers)
        for w in workers:
            got = [entry for _ in range(datagrams) for entry in unpack_burst(w.recv(65536))]
            assert [(seq, ts, marker, payload) for _, seq, ts, marker, _, payload in got] == packets
            assert {source_id for source_id, *_ in got} == {src.id}
            assert [bool(key) for *_, key, _ in got] == [packets is keyframe and i == 0 for i in range(len(packets))]
            w.settimeout(0.05)
            with pytest.raises(TimeoutError):
                w.recv(65536)
            w.settimeout(1.0)
    assert pool.mirror_drops == 0
    for pair in pairs:
        for sock in pair:
            sock.close()


def test_burst_datagrams_drop_a_malformed_tail() -> None:
    packed = [pack_packet(7, n, 90 * n, n == 3, False, bytes([n]) * (10 * n)) for n in range(1, 4)]
    (datagram, count), = bursts(packed)
    assert count == 3 and len(datagram) == sum(map(len, packed))
    assert [seq for _, seq, *_ in unpack_burst(datagram)] == [1, 2, 3]
    assert [seq for _, seq, *_ in unpack_burst(datagram[:-1])] == [1, 2]  # the last one is cut short
    assert unpack_burst(b"\x00" * 5) == []
    assert [len(d) for d, _ in bursts(packed, limit=len(packed[0]) + len(packed[1]))] == [
        len(packed[0]) + len(packed[1]), len(packed[2])]


def test_fast_start_replay_leaves_once_per_flush(send_mode) -> None:
    """A joiner replaying the GOP on a batched router: the history packets that a wake-up's live
    packets make due leave at the flush, in one C call and, being equal-sized, one GSO send."""
    send_mode("gso")
    router, src = _batched_router()
    router.groups["video"].fast_start = 1.0

    def payload(n: int) -> bytes:
        return (IDR if n == 1 else P_SLICE) + bytes([n & 0xFF]) * 900

    for n in range(1, 31):  # a keyframe, then a second of P frames, one packet each
        router.on_rtp(src, n, 3000 * n, 1, payload(n))
    router.flush()
    stream, rx, tx = _subscriber(router, 7000)
    group = router.groups["video"]
    assert stream.fast_started and group.replaying(stream)
    got = rx.read(1)  # the keyframe at once
    n, flushes, sends = 31, 0, stream.sends
    while group.replaying(stream) and flushes < 40:
        for _ in range(4):
            router.on_rtp(src, n, 3000 * n, 1, payload(n))
            n += 1
        assert rx.empty()  # owed, not sent, until the flush
        before = stream.packets
        router.flush()
        flushes += 1
        got += rx.read(stream.packets - before)
    assert not group.replaying(stream) and 5 <= flushes <= 10  # 29 history packets, 8 a flush, net 4 gained
    assert stream.sends - sends == flushes  # one send per flush
    router.on_rtp(src, n, 3000 * n, 1, payload(n))  # live again
    router.flush()
    got += rx.read(n - len(got))
    assert [p[3] for p in got] == [payload(i) for i in range(1, n + 1)] and rx.empty()
    seqs = [p[1] for p in got]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:]))
    router.remove_outbound(stream)
    tx.close()
    rx.sock.close()


def test_a_points_audio_rides_in_its_video_send(send_mode) -> None:
    """Audio and video of one wake-up, per point in one pass: where a point's two streams share a
    socket (bundled, paired), its audio packet is the shorter last datagram of the video GSO run,
    so the point costs one GSO run, not two; an unpaired point still gets both, in two sends."""
    send_mode("gso")
    router = Router("c1", FanoutGroup, keyframe_interval=0.0)
    router.batched = True
    video_src = SourceStream("video", "video/h264", 90000)
    audio_src = SourceStream("audio", "audio/opus", 48000)
    router.add_source(video_src)
    router.add_source(audio_src)
    points = []
    for i in range(3):
        rx = Receiver()
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        session = outbound_session()  # one DTLS session per point, both kinds, as aiortc has it
        video = OutboundStream("video", 8000 + 2 * i, {"video/h264": 102}, 90000)
        audio = OutboundStream("audio", 8001 + 2 * i, {"audio/opus": 111}, 48000)
        for stream in (video, audio):
            stream.bind(session, tx.sendto, rx.sock.getsockname(), tx.fileno())
        if i < 2:
            video.pair_with(audio)
        for stream in (video, audio):
            router.add_outbound(stream)
        points.append((video, audio, rx, tx))
    router.on_rtp(video_src, 1, 0, 1, IDR + b"key")  # first packets: Python path, then the C sets
    router.on_rtp(audio_src, 1, 0, 1, b"opus0")
    for video, audio, rx, _ in points:
        assert sorted(p[0] for p in rx.read(2)) == [102, 111] and video.fast and audio.fast

    def wake_up(seq: int, sizes: list[int]) -> tuple[list, tuple]:
        frame = _frame(seq, 3000 * seq, sizes)
        voice = (seq, 960 * seq, 1, bytes([seq]) * 150)
        _send(router, video_src, frame)
        router.on_rtp(audio_src, *voice)
        router.flush()
        return frame, voice

    # The frame's last run has no shorter closer: the audio packet closes it.
    cases = [(2, [1100, 1100, 1100], 1), (5, [1100, 1100, 900], 2)]  # (seq, sizes, runs when paired)
    for seq, sizes, paired_runs in cases:
        before = [(v.runs, a.runs, v.sends, a.sends, v.packets, a.packets) for v, a, _, _ in points]
        frame, voice = wake_up(seq, sizes)
        for i, ((video, audio, rx, _), (vr, ar, vs, as_, vp, ap)) in enumerate(zip(points, before)):
            got = rx.read(len(frame) + 1)
            assert rx.empty()
            assert [(s, p) for pt, s, _, p in got if pt == 102] == [
                ((s + video.seq_off) & 0xFFFF, p) for s, _, _, p in frame
            ]
            assert [(s, p) for pt, s, _, p in got if pt == 111] == [((voice[0] + audio.seq_off) & 0xFFFF, voice[3])]
            assert (video.packets - vp, audio.packets - ap) == (len(frame), 1)  # counted per stream
            runs = (video.runs - vr) + (audio.runs - ar)
            assert runs == (paired_runs if i < 2 else 2), (i, sizes)
            calls = (video.sends - vs) + (audio.sends - as_)
            assert calls == (1 if i < 2 else 2), (i, sizes)  # a paired point's runs: one sendmmsg
            assert video.drops == 0 and audio.drops == 0
    for video, audio, rx, tx in points:
        router.remove_outbound(video)
        router.remove_outbound(audio)
        video.release()
        audio.release()
        assert video.target.partner == fanout.ffi.NULL and audio.target.partner == fanout.ffi.NULL
        tx.close()
        rx.sock.close()
