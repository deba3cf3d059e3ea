"""Receiver reports read from the bytes (media.transport.receiver_reports) as aiortc's parser reads them."""

from __future__ import annotations

from media.transport.receiver_reports import receiver_reports


def _rr(blocks, sender=0x1234):  # type: ignore[no-untyped-def]
    from aiortc.rtp import RtcpReceiverInfo, RtcpRrPacket

    return bytes(RtcpRrPacket(ssrc=sender, reports=[RtcpReceiverInfo(*b) for b in blocks]))


def test_receiver_reports_match_aiortcs_parser():
    """The short path reads what aiortc's parser reads, negative cumulative loss included."""
    from aiortc.rtp import RtcpPacket, RtcpSdesPacket, RtcpSourceInfo

    blocks = [(0xAABBCCDD, 25, 1234, 70000, 90, 0x12345678, 6554), (0x01020304, 0, -3, 5, 0, 0, 0)]
    sdes = bytes(RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=0x1234, items=[(1, b"point@diemcau")])]))
    data = _rr(blocks[:1]) + sdes + _rr(blocks[1:], sender=0x5678)
    parsed = [r for p in RtcpPacket.parse(data) if hasattr(p, "reports") for r in p.reports]
    expected = [(r.ssrc, r.fraction_lost, r.packets_lost, r.highest_sequence, r.jitter, r.lsr, r.dlsr) for r in parsed]
    assert receiver_reports(data) == expected == blocks


def test_anything_but_receiver_reports_takes_the_long_way():
    from aiortc.rtp import RtcpPsfbPacket, RtcpRtpfbPacket

    rr = _rr([(1, 0, 0, 0, 0, 0, 0)])
    nack = bytes(RtcpRtpfbPacket(fmt=1, ssrc=1, media_ssrc=2, lost=[10, 11]))
    pli = bytes(RtcpPsfbPacket(fmt=1, ssrc=1, media_ssrc=2))
    assert receiver_reports(rr + nack) is None
    assert receiver_reports(pli + rr) is None
    assert receiver_reports(rr[:-4]) is None  # truncated
    assert receiver_reports(b"") == []
