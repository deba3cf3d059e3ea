"""FanoutGroup (media.egress.fanout_group): who is on the C loop, who waits, and one numbering per stream.

Real SRTP on real UDP sockets: every packet a subscriber gets is read back and decrypted.
"""

from __future__ import annotations

import socket

import pytest

from media.core.history import RtpHistory
from media.core.router import Router
from media.core.source import SourceStream
from media.egress import fanout
from media.egress.fanout_group import FanoutGroup
from media.egress.outbound import OutboundStream
from tests.test_router_switch import IDR, P_SLICE, Receiver, Requests, outbound_session

needs_c = pytest.mark.skipif(not fanout.enabled(), reason="media.native._fastpath not built")


class Point:
    """One subscriber's video stream, its receiver and its sending socket."""

    def __init__(self, router: Router, ssrc: int, pts: dict[str, int], native: bool = True) -> None:
        self.rx = Receiver()
        self.tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.stream = OutboundStream("video", ssrc, pts, 90000)
        self.stream.bind(outbound_session(), self.tx.sendto, self.rx.sock.getsockname(), self.tx.fileno() if native else -1)
        router.add_outbound(self.stream)

    def close(self, router: Router) -> None:
        router.remove_outbound(self.stream)
        self.tx.close()
        self.rx.sock.close()


def _continuous(seqs: list[int]) -> bool:
    return all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:]))


@needs_c
def test_a_source_switch_demotes_the_c_set_and_each_stream_rejoins_at_its_keyframe() -> None:
    """A packet of a new source sends the C set back to the Python path, after its queued packets
    have left; a stream that takes the new codec starts its epoch at the keyframe and is back on the
    C loop with the same target; one that does not waits outside, and rejoins at the next source it
    can take, its numbering continuing across the whole time."""
    router = Router("g1", FanoutGroup, keyframe_interval=0.0)
    router.batched = True
    group = router.groups["video"]
    h264_only = Point(router, 5000, {"video/h264": 102})
    both = Point(router, 5001, {"video/h264": 102, "video/vp8": 96})
    points = (h264_only, both)
    try:
        old = SourceStream("video", "video/h264", 90000)
        router.add_source(old, Requests())
        router.on_rtp(old, 10, 1000, 1, IDR + b"k")
        router.flush()
        targets = [p.stream.target for p in points]
        assert all(p.stream.fast for p in points) and group.c_set.members == [p.stream for p in points]
        router.on_rtp(old, 11, 4000, 1, P_SLICE + b"q1")  # queued for the C set, not yet flushed
        router.on_rtp(old, 12, 7000, 1, P_SLICE + b"q2")
        vp8 = SourceStream("video", "video/vp8", 90000)
        router.add_source(vp8, Requests())
        router.on_rtp(vp8, 500, 90000, 1, b"vp8-key", key=True)  # the switch
        assert not h264_only.stream.fast and h264_only.stream not in group.c_set.members  # waits outside
        assert both.stream.fast and group.c_set.members == [both.stream]  # rejoined at the keyframe
        assert [p.stream.target for p in points] == targets  # the same targets throughout
        assert len(group) == 2
        router.on_rtp(vp8, 501, 93000, 1, b"vp8-p")
        router.flush()
        got_h264 = h264_only.rx.read(3)
        got_both = both.rx.read(5)
        assert [p[3] for p in got_h264] == [IDR + b"k", P_SLICE + b"q1", P_SLICE + b"q2"] and h264_only.rx.empty()
        assert [p[3] for p in got_both] == [IDR + b"k", P_SLICE + b"q1", P_SLICE + b"q2", b"vp8-key", b"vp8-p"]
        assert [p[0] for p in got_both] == [102, 102, 102, 96, 96] and both.rx.empty()
        assert _continuous([p[1] for p in got_both])
        new = SourceStream("video", "video/h264", 90000)  # back to a codec every stream takes
        router.add_source(new, Requests())
        router.on_rtp(new, 40000, 5000, 1, IDR + b"n")
        router.flush()
        assert {id(s) for s in group.c_set.members} == {id(p.stream) for p in points}  # rejoined too
        router.on_rtp(new, 40001, 8000, 1, P_SLICE + b"m")
        router.flush()
        got_h264 += h264_only.rx.read(2)
        got_both += both.rx.read(2)
        assert [p[3] for p in got_h264[3:]] == [IDR + b"n", P_SLICE + b"m"]
        assert _continuous([p[1] for p in got_h264]) and _continuous([p[1] for p in got_both])
        assert [p.stream.packets for p in points] == [5, 7]
    finally:
        for p in points:
            p.close(router)


@needs_c
def test_one_numbering_seen_from_both_faces() -> None:
    """The stream's Python face and the C loop share one target: what the C loop sent is the stream's
    last sequence number and counters, a new epoch set in Python is what the C loop then sends with,
    and a NACK for a packet the C loop sent is answered from that same state."""
    router = Router("g2", FanoutGroup, keyframe_interval=0.0)
    point = Point(router, 5100, {"video/h264": 102})
    stream, group = point.stream, router.groups["video"]
    try:
        src = SourceStream("video", "video/h264", 90000)
        router.add_source(src, Requests())
        router.on_rtp(src, 100, 1000, 1, IDR + b"k")  # the Python face sends the keyframe
        assert stream.sends == 1 and stream.fast
        assert group.c_set._array[0] == stream.target  # the C loop's array points at the stream's own target
        router.on_rtp(src, 101, 4000, 1, P_SLICE + b"c1")  # the C loop sends
        router.on_rtp(src, 102, 7000, 1, P_SLICE + b"c2")
        assert (stream.last_seq, stream.last_ts, stream.packets) == (102, 7000, 3)
        got = point.rx.read(3)
        assert [p[1] for p in got] == [(s + stream.seq_off) & 0xFFFF for s in (100, 101, 102)]
        assert stream.retransmit(got[2][1])  # answered from the numbers the C loop left
        assert point.rx.sock.recv(2048) == point.rx.last_raw
        other = SourceStream("video", "video/h264", 90000)
        router.add_source(other, Requests())
        router.on_rtp(other, 7, 50, 1, IDR + b"o")  # the Python face renumbers...
        router.on_rtp(other, 8, 3050, 1, P_SLICE + b"o1")  # ...and the C loop sends with it
        got += point.rx.read(2)
        assert stream.fast and got[4][1] == (8 + stream.seq_off) & 0xFFFF
        assert _continuous([p[1] for p in got]) and stream.packets == 5
    finally:
        point.close(router)


def test_a_stream_without_a_c_target_stays_on_the_python_path() -> None:
    """No socket descriptor (a TURN-relayed point), or no C loop: the same numbering in a
    PythonTarget, gated and renumbered alike, never in the C set."""
    router = Router("g3", FanoutGroup, keyframe_interval=0.0)
    point = Point(router, 5200, {"video/h264": 102}, native=False)
    stream, group = point.stream, router.groups["video"]
    try:
        assert isinstance(stream.target, fanout.PythonTarget) and not stream.native
        src = SourceStream("video", "video/h264", 90000)
        kf = Requests()
        router.add_source(src, kf)
        router.on_rtp(src, 1, 0, 1, P_SLICE + b"wait")
        assert point.rx.empty() and stream.keyframe_requests == 1 and kf.count >= 1  # gated, asked
        for n in range(2, 6):
            router.on_rtp(src, n, 3000 * n, 1, (IDR if n == 2 else P_SLICE) + bytes([n]))
        got = point.rx.read(4)
        assert [p[1] for p in got] == [(n + stream.seq_off) & 0xFFFF for n in range(2, 6)]
        assert not stream.fast and group.c_set.members == [] and len(group) == 1
        assert (stream.packets, stream.sends, stream.runs, stream.last_seq) == (4, 4, 4, 5)
    finally:
        point.close(router)


def test_a_replay_is_abandoned_when_the_source_changes() -> None:
    """A joiner replaying the GOP of a source that is replaced stops replaying at the new source's
    first packet and, like any stream new to a source, waits for a keyframe of it (asking for one)."""
    router = Router("g4", FanoutGroup, keyframe_interval=0.0)
    group = router.groups["video"]
    group.fast_start = 1.0
    src = SourceStream("video", "video/h264", 90000)
    router.add_source(src, Requests())
    for n in range(1, 21):
        router.on_rtp(src, n, 3000 * n, 1, (IDR if n == 1 else P_SLICE) + bytes([n]))
    point = Point(router, 5300, {"video/h264": 102})
    try:
        assert group.replaying(point.stream) and point.stream.fast_started
        assert [p[3] for p in point.rx.read(1)] == [IDR + bytes([1])]
        new = SourceStream("video", "video/h264", 90000)
        router.add_source(new, Requests())
        router.on_rtp(new, 900, 0, 1, IDR + b"n")  # the switch: the old GOP is not worth finishing
        assert not group.replaying(point.stream) and point.rx.empty()
        requests = point.stream.keyframe_requests
        router.on_rtp(new, 901, 3000, 1, P_SLICE + b"p")
        assert point.stream.keyframe_requests == requests + 1 and point.rx.empty()
        router.on_rtp(new, 902, 6000, 1, IDR + b"m")
        got = point.rx.read(1)
        assert got[0][3] == IDR + b"m" and point.rx.empty()
        assert got[0][1] == (point.stream.seq_off + 902) & 0xFFFF
    finally:
        point.close(router)


def test_history_masks_with_its_own_size() -> None:
    history = RtpHistory(16)
    for seq in range(40):
        history.put(seq, seq * 10, 0, bytes([seq]))
    assert history.get(39) == (390, 0, bytes([39])) and history.get(24) == (240, 0, bytes([24]))
    assert history.get(23) is None  # 16 back: overwritten
    with pytest.raises(ValueError):
        RtpHistory(1000)
