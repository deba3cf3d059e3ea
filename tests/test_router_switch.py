"""Router/OutboundStream semantics on real SRTP + UDP: source switches at keyframes, continuous output.

This is what lets a speaker reconnect (and, next, a point take the floor) without subscribers
re-signalling: the outgoing sequence numbers and timestamps continue, and video switches only at a
keyframe of the new source while the old one keeps flowing until then.
"""

from __future__ import annotations

import os
import socket
import time

import pylibsrtp
import pytest

from media.egress import fanout
from media.egress.fanout_group import FanoutGroup
from media.egress.outbound import OutboundStream
from media.core.router import Router
from media.core.source import SourceStream

KEY = os.urandom(30)
IDR = bytes([0x65, 0x88, 0x84])  # NAL type 5
SPS = bytes([0x67, 0x42, 0xC0, 0x1F])  # NAL type 7
P_SLICE = bytes([0x41, 0x9A, 0x02])  # NAL type 1


class Receiver:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(1.0)
        policy = pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND)
        self.srtp = pylibsrtp.Session(policy)

    def read(self, count: int) -> list[tuple[int, int, int, bytes]]:
        out = []
        for _ in range(count):
            self.last_raw = self.sock.recv(2048)
            data = self.srtp.unprotect(self.last_raw)
            if data[0] & 0x20:  # RTP padding (RFC 3550 5.1): the last octet counts it, itself included
                assert 1 <= data[-1] <= len(data) - 12, data[-1]
                data = data[: -data[-1]]
            out.append((data[1] & 0x7F, int.from_bytes(data[2:4], "big"), int.from_bytes(data[4:8], "big"), data[12:]))
        return out

    def empty(self) -> bool:
        self.sock.settimeout(0.05)
        try:
            self.sock.recv(2048)
            return False
        except TimeoutError:
            return True
        finally:
            self.sock.settimeout(1.0)


def outbound_session() -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    policy.allow_repeat_tx = True  # as aiortc configures it: retransmissions reuse sequence numbers
    return pylibsrtp.Session(policy)


@pytest.fixture(params=["python", "c"])
def wired(request):
    """One subscriber stream, forwarded by the Python loop or by the C fast path (media.native._fastpath)."""
    if request.param == "c" and not fanout.enabled():
        pytest.fail("media.native._fastpath is not built: run `python -m media.native.build` (make does)")
    router = Router("c1", FanoutGroup, keyframe_interval=0.0)
    rx = Receiver()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stream = OutboundStream("video", 4242, {"video/h264": 102}, 90000)
    fd = tx.fileno() if request.param == "c" else -1
    stream.bind(outbound_session(), tx.sendto, rx.sock.getsockname(), fd)
    assert stream.native == (request.param == "c")
    router.add_outbound(stream)
    yield router, stream, rx
    router.remove_outbound(stream)
    tx.close()
    rx.sock.close()


class Requests:
    def __init__(self) -> None:
        self.count = 0

    def request_keyframe(self) -> None:
        self.count += 1


def test_new_subscriber_waits_for_keyframe(wired):
    router, stream, rx = wired
    src = SourceStream("video", "video/h264", 90000)
    kf = Requests()
    router.add_source(src, kf)
    router.on_rtp(src, 100, 9000, 1, P_SLICE + b"a")
    assert rx.empty() and kf.count >= 1  # gated, and a keyframe was asked for
    router.on_rtp(src, 101, 12000, 0, SPS + b"b")
    router.on_rtp(src, 102, 12000, 1, IDR + b"c")
    got = rx.read(2)
    assert [p[0] for p in got] == [102, 102]
    assert got[1][1] == (got[0][1] + 1) & 0xFFFF
    assert got[0][3].endswith(b"b") and got[1][3].endswith(b"c")
    router.on_rtp(src, 103, 15000, 1, P_SLICE + b"d")
    got = rx.read(1)
    assert got[0][1:3] == ((stream.seq_off + 103) & 0xFFFF, (stream.ts_off + 15000) & 0xFFFFFFFF)
    assert stream.fast == stream.native  # steady state: on the C loop when it is built
    assert stream.packets == 3 and stream.octets == sum(len(x) + 1 for x in (SPS, IDR, P_SLICE))


def test_switch_of_source_is_continuous_and_waits_for_a_keyframe(wired):
    router, stream, rx = wired
    old = SourceStream("video", "video/h264", 90000)
    router.add_source(old, Requests())
    router.on_rtp(old, 500, 1000, 1, IDR + b"o1")
    router.on_rtp(old, 501, 4000, 1, P_SLICE + b"o2")
    first = rx.read(2)
    assert stream.fast == stream.native
    new = SourceStream("video", "video/h264", 90000)  # e.g. the speaker reconnected / a point got the floor
    router.add_source(new, Requests())
    router.on_rtp(new, 60000, 777777, 1, P_SLICE + b"n0")  # not a keyframe: new source not yet active
    router.on_rtp(old, 502, 7000, 1, P_SLICE + b"o3")  # old source still flows meanwhile
    got = rx.read(1)
    assert got[0][3].endswith(b"o3")
    time.sleep(0.1)  # the old source goes quiet; the new one's keyframe comes 100 ms later
    router.on_rtp(new, 60001, 780000, 1, IDR + b"n1")  # switch here
    router.on_rtp(new, 60002, 783000, 1, P_SLICE + b"n2")
    router.on_rtp(old, 503, 10000, 1, P_SLICE + b"o4")  # the old source is no longer forwarded
    got += rx.read(2)
    assert rx.empty()
    assert [p[3][-2:] for p in got] == [b"o3", b"n1", b"n2"]
    seqs = [p[1] for p in first + got]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:])), seqs
    ts = [p[2] for p in first + got]
    assert ((ts[3] - ts[2]) & 0xFFFFFFFF) >= 0.09 * 90000  # advanced by the wall-clock gap, not jumped
    assert ((ts[3] - ts[2]) & 0xFFFFFFFF) < 0.5 * 90000
    assert (ts[4] - ts[3]) & 0xFFFFFFFF == 3000  # then the new source's own spacing


def test_nack_is_answered_from_history_with_the_same_bytes(wired):
    router, stream, rx = wired
    src = SourceStream("video", "video/h264", 90000)
    router.add_source(src, Requests())
    router.on_rtp(src, 10, 1000, 1, IDR + b"k")
    router.on_rtp(src, 11, 4000, 1, P_SLICE + b"p")  # on the C loop when it is built
    original = rx.read(2)
    sent = rx.last_raw
    assert stream.fast == stream.native
    assert stream.retransmit(original[1][1])
    assert rx.sock.recv(2048) == sent  # byte for byte what the subscriber missed
    assert not stream.retransmit((original[1][1] + 500) & 0xFFFF)  # never sent: nothing to resend
    assert stream.retransmits == 1


async def test_keyframe_requests_are_merged(wired):
    import asyncio

    router, stream, rx = wired
    router.keyframe_interval = 0.3
    await asyncio.sleep(0.35)
    src = SourceStream("video", "video/h264", 90000)
    kf = Requests()
    router.add_source(src, kf)
    for _ in range(50):
        router.request_keyframe(stream)
    assert kf.count == 1  # the first goes at once
    await asyncio.sleep(0.4)
    assert kf.count == 2  # the other 49 became one, sent when the interval allowed
    await asyncio.sleep(0.4)
    assert kf.count == 2


def test_c_loop_serves_many_subscribers_and_reports_a_failing_one() -> None:
    """Every steady subscriber gets each packet with its own offsets; a send error affects only its own."""
    if not fanout.enabled():
        pytest.fail("media.native._fastpath is not built: run `python -m media.native.build` (make does)")
    router = Router("c2", FanoutGroup, keyframe_interval=0.0)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receivers = [Receiver() for _ in range(20)]
    streams = []
    for i, rx in enumerate(receivers):
        stream = OutboundStream("video", 1000 + i, {"video/h264": 96 + i % 3}, 90000)
        stream.bind(outbound_session(), tx.sendto, rx.sock.getsockname(), tx.fileno())
        router.add_outbound(stream)
        streams.append(stream)
    broken = OutboundStream("video", 999, {"video/h264": 102}, 90000)
    broken.bind(outbound_session(), tx.sendto, ("::1", 9), tx.fileno())  # IPv6 peer, IPv4 socket
    failures = []
    broken.on_failure = lambda: failures.append(1)
    router.add_outbound(broken)
    src = SourceStream("video", "video/h264", 90000)
    router.add_source(src, Requests())
    try:
        for n in range(10):
            router.on_rtp(src, 200 + n, 3000 * n, 1, (IDR if n == 0 else P_SLICE) + bytes([n]) * 900)
        assert all(s.fast for s in streams) and len(router.groups["video"].c_set.members) == 21
        for i, (stream, rx) in enumerate(zip(streams, receivers)):
            got = rx.read(10)
            assert [p[0] for p in got] == [96 + i % 3] * 10
            assert [p[1] for p in got] == [(200 + n + stream.seq_off) & 0xFFFF for n in range(10)]
            assert [p[3][-1] for p in got] == list(range(10))
            assert stream.packets == 10 and stream.drops == 0
        assert failures and broken.packets == 0 and broken.drops == 10
        router.remove_outbound(broken)
        assert len(router.groups["video"].c_set.members) == 20 and broken._fd == -1
    finally:
        for stream in streams:
            router.remove_outbound(stream)
        tx.close()
        for rx in receivers:
            rx.sock.close()


def test_late_joiner_starts_from_the_current_gop_without_a_keyframe_request(wired):
    """Fast start: the keyframe's frame at once, then the rest of the GOP two packets per live packet
    (about twice real time), in order, then live on the usual path; the publisher is not asked."""
    router, first_stream, rx = wired
    stream, tx, src, kf = _fast_start_case(router, first_stream, rx, 1.0)
    router.on_rtp(src, 1000, 90000, 0, P_SLICE + b"old")  # before the keyframe: not replayed
    router.on_rtp(src, 1001, 93000, 0, SPS + b"k0")  # the keyframe's frame: SPS ...
    router.on_rtp(src, 1002, 93000, 1, IDR + b"k1")  # ... and IDR
    for i in range(3, 33):  # one second of P frames at 30 fps
        router.on_rtp(src, 1000 + i, 93000 + (i - 2) * 3000, 1, P_SLICE + b"p%d" % i)
    requests = kf.count
    group = router.groups["video"]
    router.add_outbound(stream)
    assert stream.fast_started and kf.count == requests  # no keyframe asked of the publisher
    got = rx.read(2)
    assert [p[3] for p in got] == [SPS + b"k0", IDR + b"k1"] and rx.empty()  # the keyframe at once
    live = 0
    for i in range(33, 133):  # live packets drive the replay: 2 history packets each
        if not group.replaying(stream):
            break
        router.on_rtp(src, 1000 + i, 93000 + (i - 2) * 3000, 1, P_SLICE + b"p%d" % i)
        live += 1
    assert not group.replaying(stream) and 25 <= live <= 40  # ~30 history packets at 2 per live one, net 1
    router.on_rtp(src, 1000 + 33 + live, 93000 + (31 + live) * 3000, 1, P_SLICE + b"next")
    got += rx.read(30 + live + 1)
    assert rx.empty()
    assert [p[3] for p in got[2:]] == [P_SLICE + b"p%d" % i for i in range(3, 33 + live)] + [P_SLICE + b"next"]
    seqs = [p[1] for p in got]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:]))
    assert stream.fast == stream.native  # then steady state, on the C loop when built
    assert stream.packets == len(got)
    router.remove_outbound(stream)
    tx.close()


async def test_old_gop_or_missing_packets_mean_a_keyframe_request(wired):
    import asyncio

    router, first_stream, rx = wired
    stream, tx, src, kf = _fast_start_case(router, first_stream, rx, 0.2)
    router.on_rtp(src, 10, 1000, 1, IDR + b"k")
    router.on_rtp(src, 12, 4000, 1, P_SLICE + b"p")  # 11 never arrived from the publisher
    requests = kf.count
    router.add_outbound(stream)
    assert not stream.fast_started and kf.count == requests + 1 and rx.empty()
    router.remove_outbound(stream)
    src2 = SourceStream("video", "video/h264", 90000)
    router.active["video"] = None
    router.add_source(src2, kf)
    router.on_rtp(src2, 20, 1000, 1, IDR + b"k")
    await asyncio.sleep(0.3)  # older than fast_start
    router.keyframe_interval = 0.0
    stream2, tx2 = _joiner(first_stream, rx)
    router.add_outbound(stream2)
    assert not stream2.fast_started and kf.count == requests + 2 and rx.empty()
    router.remove_outbound(stream2)
    tx.close()
    tx2.close()


def _fast_start_case(
    router: Router, first_stream: OutboundStream, rx: Receiver, seconds: float
) -> tuple[OutboundStream, socket.socket, SourceStream, "Requests"]:
    """A fresh joiner (not yet added), a new video source with a request counter, fast start on."""
    router.remove_outbound(first_stream)
    stream, tx = _joiner(first_stream, rx)
    router.groups["video"].fast_start = seconds
    src = SourceStream("video", "video/h264", 90000)
    kf = Requests()
    router.add_source(src, kf)
    return stream, tx, src, kf


def _joiner(like: OutboundStream, rx: Receiver) -> tuple[OutboundStream, socket.socket]:
    """A second subscriber stream to the same receiver, on the same loop (Python or C) as ``like``."""
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stream = OutboundStream("video", 4243, {"video/h264": 102}, 90000)
    stream.bind(outbound_session(), tx.sendto, rx.sock.getsockname(), tx.fileno() if like.native else -1)
    return stream, tx


async def test_a_newly_selected_source_is_asked_for_a_keyframe_at_once():
    """Keyframe requests are bounded per publisher asked, not per track: a point given the floor
    (a new pending video source) is asked at once, even if the speaker was asked a moment ago;
    the speaker itself still gets at most one request per interval."""
    router = Router("c3", FanoutGroup, keyframe_interval=1.0)
    speaker, point = SourceStream("video", "video/h264", 90000), SourceStream("video", "video/h264", 90000)
    asked_speaker, asked_point = Requests(), Requests()
    router.add_source(speaker, asked_speaker)
    router.on_rtp(speaker, 1, 1000, 1, b"\x65" + b"\x00" * 10, key=True)  # now active
    router.request_keyframe(track="video")
    router.request_keyframe(track="video")  # merged: within the interval
    assert asked_speaker.count == 1
    router.add_source(point, asked_point)  # selected: pending until its keyframe
    assert asked_point.count == 1, "the new source is asked at once"
    router.request_keyframe(track="video")
    assert asked_point.count == 1 and asked_speaker.count == 1  # both within their bounds now
    router.close()


@pytest.mark.parametrize("path", ["python", "c"])
def test_a_stream_moving_tracks_survives_a_source_switch_in_the_group_it_leaves(path):
    """A point's audio moved to the to_point track keeps its old group (the program) until the new
    track's first packet; if the program switches source meanwhile (the dialogue's mix comes in),
    the old group starts the new epoch for it as for anyone, then the new track takes it over and
    the old group lets it go (it once removed the stream from its own list while walking it)."""
    router = Router("c4", FanoutGroup, keyframe_interval=0.0)
    rx = Receiver()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stream = OutboundStream("audio", 5151, {"audio/opus": 111}, 48000)
    others = [OutboundStream("audio", 6000 + i, {"audio/opus": 111}, 48000) for i in range(3)]
    for s in [stream, *others]:
        s.bind(outbound_session(), tx.sendto, rx.sock.getsockname(), tx.fileno() if path == "c" else -1)
        router.add_outbound(s)
    speaker, mix, hall = (SourceStream("audio", "audio/opus", 48000) for _ in range(3))
    router.add_source(speaker)
    for i in range(3):
        router.on_rtp(speaker, 10 + i, 960 * i, 0, b"s%d" % i)
    rx.read(12)
    router.select(hall, "to_point")
    router.move_outbound(stream, "to_point")
    assert stream.leaving is router.groups["audio"]
    router.add_source(mix)  # the program's sound switches at once
    router.on_rtp(mix, 500, 48000, 0, b"m0")
    got = rx.read(4)
    assert sorted(p[3] for p in got) == [b"m0"] * 4, "everyone, the leaving stream too, gets the mix"
    router.on_rtp(hall, 900, 96000, 0, b"h0")  # the to_point track's first packet: the handoff
    got = rx.read(1)
    assert got[0][3] == b"h0" and stream.leaving is None and stream.track == "to_point"
    router.on_rtp(mix, 501, 48960, 0, b"m1")
    got = rx.read(3)
    assert [p[3] for p in got] == [b"m1"] * 3 and rx.empty(), "the old group let it go"
    for s in [stream, *others]:
        router.remove_outbound(s)
    tx.close()
    rx.sock.close()


@pytest.mark.parametrize("path", ["python", "c"])
def test_a_stream_moving_to_a_track_of_the_same_source_is_taken_over_without_a_duplicate(path):
    """The floor point's audio moves to to_point while that track and the program carry the same
    source (the hall's, before the mix comes in): the new track takes it over at the next packet,
    in the same epoch, and the stream gets that packet once, not from both groups."""
    router = Router("c5", FanoutGroup, keyframe_interval=0.0)
    rx = Receiver()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stream = OutboundStream("audio", 5252, {"audio/opus": 111}, 48000)
    stream.bind(outbound_session(), tx.sendto, rx.sock.getsockname(), tx.fileno() if path == "c" else -1)
    router.add_outbound(stream)
    hall = SourceStream("audio", "audio/opus", 48000)
    router.add_source(hall)
    router.on_rtp(hall, 10, 0, 0, b"h0")
    router.flush()
    first = rx.read(1)[0]
    router.select(hall, "to_point")
    router.move_outbound(stream, "to_point")
    for i in range(1, 4):
        router.on_rtp(hall, 10 + i, 960 * i, 0, b"h%d" % i)
        router.flush()
    got = rx.read(3)
    assert [p[3] for p in got] == [b"h1", b"h2", b"h3"] and rx.empty(), "each packet once"
    assert [p[1] for p in got] == [(first[1] + i) & 0xFFFF for i in (1, 2, 3)], "the same epoch's numbering"
    assert stream.leaving is None and stream in router.groups["to_point"].c_set.members + router.groups["to_point"]._slow  # type: ignore[operator]
    router.remove_outbound(stream)
    tx.close()
    rx.sock.close()
