"""One SRTP index, one plaintext: retransmissions never protect other bytes under an index already used.

With AES-GCM a reused (SSRC, ROC, SEQ) with different plaintexts reuses the IV, which gives away the
GHASH key and lets anyone forge packets on that stream; with AES-CM it reveals the XOR of the two
plaintexts. Every datagram a subscriber stream sends is captured on a real UDP socket and grouped by
its clear-text (SSRC, sequence number): each group must hold identical bytes. Covered: a padded burst
from the C loop then a NACK for a padded packet (the retransmission goes over RTX, or the stream is
never padded without RTX), the Python loop, AES-GCM (our own protect) and AES-CM (libsrtp), and a
NACK for a packet sent before a switch of source.
"""

from __future__ import annotations

import time
import os
import socket
import struct

import pylibsrtp
import pytest

from media.egress import fanout, srtp_gcm
from media.egress.fanout_group import FanoutGroup
from media.egress.outbound import NACK_BURST, NACK_HOLD, NACK_RATE, RTX_SHARE, OutboundStream
from media.core.router import Router
from media.core.source import SourceStream

IDR = bytes([0x65, 0x88, 0x84])  # NAL type 5
P_SLICE = bytes([0x41, 0x9A, 0x02])  # NAL type 1
SSRC, RTX_SSRC, PT, RTX_PT = 0x4242, 0x5353, 102, 103
PROFILES = {
    "aes-gcm": (pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 16, 12),
    "aes-cm": (pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 16, 14),
}


class Capture:
    """Every datagram the stream sends, read off a real socket and decrypted once per index."""

    def __init__(self, profile: str) -> None:
        srtp_profile, key_len, salt_len = PROFILES[profile]
        self.key, self.salt = os.urandom(key_len), os.urandom(salt_len)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        rx = pylibsrtp.Policy(key=self.key + self.salt, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
                              srtp_profile=srtp_profile)
        rx.window_size = 1024
        self.rx = pylibsrtp.Session(rx)
        tx = pylibsrtp.Policy(key=self.key + self.salt, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                              srtp_profile=srtp_profile)
        tx.allow_repeat_tx = True  # as aiortc sets it
        tx.window_size = 1024
        self.tx = pylibsrtp.Session(tx)
        self.gcm = srtp_gcm.new(self.key, self.salt) if profile == "aes-gcm" else None
        self.datagrams: list[bytes] = []
        self.plain: dict[tuple[int, int], bytes] = {}  # (ssrc, seq) -> decrypted packet, first copy

    def drain(self) -> list[bytes]:
        got = []
        for _ in range(10_000):
            try:
                got.append(self.sock.recv(4096))
            except BlockingIOError:
                break
        for data in got:
            index = (int.from_bytes(data[8:12], "big"), int.from_bytes(data[2:4], "big"))
            if index not in self.plain:
                self.plain[index] = self.rx.unprotect(data)  # authenticates: raises on a bad tag
        self.datagrams += got
        return got

    def assert_one_plaintext_per_index(self) -> None:
        by_index: dict[tuple[int, int], set[bytes]] = {}
        for data in self.datagrams:
            by_index.setdefault((int.from_bytes(data[8:12], "big"), int.from_bytes(data[2:4], "big")), set()).add(data)
        reused = {index: len(v) for index, v in by_index.items() if len(v) > 1}
        assert not reused, f"SRTP indexes protecting different bytes: {reused}"


def wire(profile: str, path: str, rtx: bool):  # type: ignore[no-untyped-def]
    if path == "c" and not fanout.enabled():
        pytest.fail("media.native._fastpath is not built: run `python -m media.native.build` (make does)")
    cap = Capture(profile)
    if profile == "aes-gcm" and path == "c":
        assert cap.gcm is not None, "the C path's own AES-GCM protect is not available"
    tx_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stream = OutboundStream("video", SSRC, {"video/h264": PT}, 90000,
                            {PT: RTX_PT} if rtx else None, RTX_SSRC if rtx else 0)
    stream.bind(cap.tx, tx_sock.sendto, cap.sock.getsockname(), tx_sock.fileno() if path == "c" else -1, cap.gcm)
    assert stream.native == (path == "c")
    router = Router("c1", FanoutGroup, keyframe_interval=0.0)
    router.batched = True
    router.add_outbound(stream)
    return router, stream, cap, tx_sock


def payload(size: int, tag: int) -> bytes:
    return P_SLICE + bytes([tag]) * (size - len(P_SLICE))


def burst(router: Router, source: SourceStream, first_seq: int, sizes: list[int], ts: int) -> None:
    """One frame's packets arriving in one wake-up, then the flush that sends them."""
    for i, size in enumerate(sizes):
        router.on_rtp(source, (first_seq + i) & 0xFFFF, ts, int(i == len(sizes) - 1), payload(size, i))
    router.flush()


def padded(packet: bytes) -> bool:
    return bool(packet[0] & 0x20)


@pytest.mark.parametrize("rtx", [True, False], ids=["rtx", "no-rtx"])
@pytest.mark.parametrize("path", ["c", "python"])
@pytest.mark.parametrize("profile", ["aes-gcm", "aes-cm"])
def test_nack_for_a_padded_packet_never_reuses_its_index(profile, path, rtx):
    router, stream, cap, tx_sock = wire(profile, path, rtx)
    try:
        src = SourceStream("video", "video/h264", 90000)
        router.add_source(src)
        router.on_rtp(src, 65530, 3000, 1, IDR + b"k")  # the keyframe: the stream starts (Python path)
        router.flush()
        assert stream.fast == (path == "c")
        # nearly equal sizes, as packetizers split a NAL unit: the C loop pads them to one GSO run;
        # the sequence numbers wrap inside the burst
        burst(router, src, 65531, [1000, 1001, 1003, 999, 1002, 1004, 1000, 998], 6000)
        sent = cap.drain()
        assert len(sent) == 9
        out_seqs = [int.from_bytes(d[2:4], "big") for d in sent]
        victims = [s for s, d in zip(out_seqs, sent) if padded(cap.plain[(SSRC, s)])] or out_seqs[1:]
        if path == "c" and rtx:
            assert len(victims) >= 4, "the C loop did not pad the burst: the test would prove nothing"
        if not rtx:
            assert not any(padded(cap.plain[(SSRC, s)]) for s in out_seqs), "a stream without RTX was padded"
        for out_seq in victims:  # the subscriber lost them and NACKs
            assert stream.retransmit(out_seq)
        again = cap.drain()
        assert len(again) == len(victims) and stream.retransmits == len(victims)
        cap.assert_one_plaintext_per_index()
        for out_seq, data in zip(victims, again):
            original = cap.plain[(SSRC, out_seq)]
            body = original[12:len(original) - (original[-1] if padded(original) else 0)]
            ssrc, seq = int.from_bytes(data[8:12], "big"), int.from_bytes(data[2:4], "big")
            if rtx:  # RFC 4588: own SSRC and sequence numbers, the original's number then its payload
                rtx_packet = cap.plain[(ssrc, seq)]
                assert ssrc == RTX_SSRC and rtx_packet[1] & 0x7F == RTX_PT
                assert rtx_packet[4:8] == original[4:8] and (rtx_packet[1] & 0x80) == (original[1] & 0x80)
                assert rtx_packet[12:] == struct.pack("!H", out_seq) + body
            else:  # the very datagram the subscriber missed
                assert (ssrc, seq) == (SSRC, out_seq)
                assert data == sent[out_seqs.index(out_seq)]
        if rtx:
            rtx_seqs = [int.from_bytes(d[2:4], "big") for d in again]
            assert all((b - a) & 0xFFFF == 1 for a, b in zip(rtx_seqs, rtx_seqs[1:]))  # one index each
    finally:
        router.remove_outbound(stream)
        tx_sock.close()
        cap.sock.close()


@pytest.mark.parametrize("path", ["c", "python"])
@pytest.mark.parametrize("rtx", [True, False], ids=["rtx", "no-rtx"])
def test_nack_from_before_a_source_switch_is_answered_from_the_old_source(path, rtx):
    """The old source's sequence numbers, mapped through the new offset, would name packets of the
    new source (here: those that arrived before its keyframe) under indexes already used. They are
    mapped through the old epoch's own offsets to the old source's history instead: the same
    plaintext under the same index again (a packet lost just before a switch is repaired, and the
    point's jitter buffer does not wait for it). Two switches back, they are refused."""
    router, stream, cap, tx_sock = wire("aes-gcm", path, rtx)
    try:
        old = SourceStream("video", "video/h264", 90000)
        router.add_source(old)
        router.on_rtp(old, 100, 1000, 1, IDR + b"o")
        burst(router, old, 101, [500, 501, 502, 503], 4000)
        before = [int.from_bytes(d[2:4], "big") for d in cap.drain()]
        assert len(before) == 5
        new = SourceStream("video", "video/h264", 90000)
        router.add_source(new)
        for i in range(8):  # the new source's packets before its keyframe: in its history, not sent
            router.on_rtp(new, 40000 + i, 900000, 1, payload(700, 0x80 + i))
        router.flush()
        router.on_rtp(new, 40008, 903000, 1, IDR + b"n")  # switch here
        burst(router, new, 40009, [600, 601], 906000)
        after = [int.from_bytes(d[2:4], "big") for d in cap.drain()]
        assert len(after) == 3 and after[0] == (before[-1] + 1) & 0xFFFF  # continuous numbering
        for out_seq in before:
            assert stream.retransmit(out_seq)
        assert stream.nacks_refused == 0
        assert not stream.retransmit((after[-1] + 1) & 0xFFFF)  # not sent yet
        assert stream.retransmit(after[1])  # the new epoch's own packets are answered
        assert len(cap.drain()) == len(before) + 1
        cap.assert_one_plaintext_per_index()

        third = SourceStream("video", "video/h264", 90000)
        router.add_source(third)
        router.on_rtp(third, 7000, 50000, 1, IDR + b"t")  # a keyframe: switch at once
        router.flush()
        assert len(cap.drain()) == 1
        for out_seq in before:  # the first source's numbers: two switches back
            assert not stream.retransmit(out_seq)
        assert stream.nacks_refused == 1 + len(before)  # (with the one not sent yet)
        assert stream.retransmit(after[2])  # the epoch just before is still answered
        assert len(cap.drain()) == 1
        cap.assert_one_plaintext_per_index()
    finally:
        router.remove_outbound(stream)
        tx_sock.close()
        cap.sock.close()


def _flowing(router, stream, cap, count: int) -> int:  # type: ignore[no-untyped-def]
    """A video source sending a keyframe and ``count - 1`` more packets to ``stream``, captured and
    drained: our sequence number of its first packet after the keyframe."""
    src = SourceStream("video", "video/h264", 90000)
    router.add_source(src)
    _fed(router, src, 0, count)
    cap.drain()
    return (stream.seq_off + 1) & 0xFFFF


def _fed(router, src, begin: int, end: int) -> None:  # type: ignore[no-untyped-def]
    """Packets ``begin`` to ``end - 1`` of ``src`` (the first of a stream a keyframe), flushed."""
    for seq in range(begin, end):
        if seq == 0:
            router.on_rtp(src, 0, 0, 1, IDR + b"k")
        else:
            router.on_rtp(src, seq, 3000 * (seq // 4), int(seq % 4 == 3), payload(200, seq & 0xFF))
    router.flush()


def test_a_flood_of_nacks_is_bounded():
    """A NACK list of thousands (a hostile point) or the same loss asked again and again costs a
    bounded number of retransmissions, not one each."""
    router, stream, cap, tx_sock = wire("aes-gcm", "python", True)
    try:
        first = _flowing(router, stream, cap, 600)
        for _ in range(20):
            stream.retransmit(first)  # the same packet asked for again and again
        assert len(cap.drain()) == 1
        answered = received = 0
        began = time.monotonic()
        for chunk in range(1, 599, 50):  # drained as it goes: the capture socket must not overflow
            answered += sum(stream.retransmit((first + i) & 0xFFFF) for i in range(chunk, min(chunk + 50, 599)))
            received += len(cap.drain())
        # The burst, plus what the rate refilled while the test ran (a slow machine takes longer).
        assert answered <= NACK_BURST + int(NACK_RATE * (time.monotonic() - began)) + 1
        assert answered < 598 // 2
        assert received == answered
        cap.assert_one_plaintext_per_index()
    finally:
        router.remove_outbound(stream)
        tx_sock.close()
        cap.sock.close()


@pytest.mark.parametrize("path", ["c", "python"])
@pytest.mark.parametrize("rtx", [True, False], ids=["rtx", "no-rtx"])
def test_probe_padding_repeats_sent_packets_over_rtx_one_index_each(path, rtx):
    """Adaptation's probe padding (OutboundStream.pad) resends packets of the current epoch over RTX,
    each under the next RTX sequence number (across its wrap): the same bytes an RTX answer would
    carry, never a used index; a stream without RTX is never padded; nothing before the epoch."""
    router, stream, cap, tx_sock = wire("aes-gcm", path, rtx)
    try:
        src = SourceStream("video", "video/h264", 90000)
        router.add_source(src)
        router.on_rtp(src, 65530, 3000, 1, IDR + b"k")
        router.flush()
        burst(router, src, 65531, [1000, 1001, 1003, 999, 1002, 1004], 6000)
        sent = cap.drain()
        assert len(sent) == 7
        stream.rtx_seq = 0xFFFE  # the RTX numbering wraps during the padding
        total = 0
        for _ in range(5):  # 5 ticks of 3000 bytes: more packets than the epoch has, cycled
            total += stream.pad(3000)
        padding = cap.drain()
        if not rtx:
            assert total == 0 and not padding and stream.probe_octets == 0
            return
        assert total >= 15000 and stream.probe_octets == total and len(padding) >= 15
        cap.assert_one_plaintext_per_index()
        seqs = [int.from_bytes(d[2:4], "big") for d in padding]
        assert all(int.from_bytes(d[8:12], "big") == RTX_SSRC for d in padding)
        assert seqs[:3] == [0xFFFE, 0xFFFF, 0] and all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:]))
        originals = {int.from_bytes(d[2:4], "big"): cap.plain[(SSRC, int.from_bytes(d[2:4], "big"))] for d in sent}
        for data in padding:
            rtx_packet = cap.plain[(RTX_SSRC, int.from_bytes(data[2:4], "big"))]
            osn = int.from_bytes(rtx_packet[12:14], "big")
            original = originals[osn]  # one of the epoch's packets, as sent
            body = original[12:len(original) - (original[-1] if padded(original) else 0)]
            assert rtx_packet[14:] == body and rtx_packet[4:8] == original[4:8]
        assert stream.retransmits == 0, "padding is not counted as retransmissions"
    finally:
        router.remove_outbound(stream)
        tx_sock.close()
        cap.sock.close()


def test_repairs_stay_within_a_share_of_what_was_forwarded_and_once_per_round_trip():
    """A congested point NACKs what its full link dropped, and the repairs, lost again, are NACKed
    again: they are answered once per round trip, and in all at most ``RTX_SHARE`` of the packets
    forwarded since (beyond the first burst), or they would fill the link further."""
    router, stream, cap, tx_sock = wire("aes-gcm", "python", True)
    try:
        first = _flowing(router, stream, cap, 300)
        src = stream.source
        stream.rtt = 0.4  # a queue on the link: NACKs come back before our answer could arrive
        assert stream.retransmit(first)
        time.sleep(NACK_HOLD * 2)
        assert not stream.retransmit(first), "asked again within the round trip"
        assert len(cap.drain()) == 1
        # the first burst is spent ...
        spent = sum(stream.retransmit((first + i) & 0xFFFF) for i in range(1, 299))
        assert 0 < spent < NACK_BURST + 1 + int(NACK_RATE * 0.5)
        cap.drain()
        # ... then 100 more packets forwarded earn about RTX_SHARE * 100 repairs, however long it took
        _fed(router, src, 300, 400)
        cap.drain()
        time.sleep(0.2)
        later = sum(stream.retransmit((first + i) & 0xFFFF) for i in range(300, 399))
        assert int(RTX_SHARE * 100) - 1 <= later <= int(RTX_SHARE * 100) + 1, later
        assert len(cap.drain()) == later
        cap.assert_one_plaintext_per_index()
    finally:
        router.remove_outbound(stream)
        tx_sock.close()
        cap.sock.close()
