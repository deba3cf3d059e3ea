"""drive: SRTP/SRTCP handlers run to completion where the datagram arrives (media.transport.srtp_intake).

The intake itself is exercised end to end by tests/test_relay.py (the speaker's packets reach the
subscribers and the recorder, receiver reports reach the link quality numbers, NACKs are answered
from the history) against real aiortc peers.
"""

from __future__ import annotations

import asyncio

from media.transport.srtp_intake import drive


def test_a_handler_that_never_waits_completes_in_place():
    done = []

    async def handler() -> None:
        async def inner() -> None:
            done.append("inner")  # awaiting a coroutine that does not suspend is fine

        await inner()
        done.append("outer")

    assert drive(handler())
    assert done == ["inner", "outer"]


def test_a_handler_that_waits_goes_on_on_the_loop():
    async def scenario() -> list[str]:
        done: list[str] = []
        gate = asyncio.get_running_loop().create_future()

        async def handler() -> None:
            done.append("before")
            await asyncio.sleep(0)  # a bare yield
            done.append("after yield")
            done.append(await gate)  # a future
            done.append("end")

        assert not drive(handler())
        assert done == ["before"]
        await asyncio.sleep(0.01)
        assert done == ["before", "after yield"]
        gate.set_result("gate")
        await asyncio.sleep(0.01)
        return done

    assert asyncio.run(scenario()) == ["before", "after yield", "gate", "end"]


def test_a_failing_handler_is_logged_not_raised(caplog):
    async def handler() -> None:
        raise RuntimeError("boom")

    assert drive(handler())
    assert "SRTP handler failed" in caplog.text


def _rr(blocks, sender=0x1234):  # type: ignore[no-untyped-def]
    from aiortc.rtp import RtcpReceiverInfo, RtcpRrPacket

    return bytes(RtcpRrPacket(ssrc=sender, reports=[RtcpReceiverInfo(*b) for b in blocks]))


def test_receiver_reports_match_aiortcs_parser():
    """The short path reads what aiortc's parser reads, negative cumulative loss included."""
    from aiortc.rtp import RtcpPacket, RtcpSdesPacket, RtcpSourceInfo

    from media.transport.srtp_intake import receiver_reports

    blocks = [(0xAABBCCDD, 25, 1234, 70000, 90, 0x12345678, 6554), (0x01020304, 0, -3, 5, 0, 0, 0)]
    sdes = bytes(RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=0x1234, items=[(1, b"point@diemcau")])]))
    data = _rr(blocks[:1]) + sdes + _rr(blocks[1:], sender=0x5678)
    parsed = [r for p in RtcpPacket.parse(data) if hasattr(p, "reports") for r in p.reports]
    expected = [(r.ssrc, r.fraction_lost, r.packets_lost, r.highest_sequence, r.jitter, r.lsr, r.dlsr) for r in parsed]
    assert receiver_reports(data) == expected == blocks


def test_anything_but_receiver_reports_takes_the_long_way():
    from aiortc.rtp import RtcpPsfbPacket, RtcpRtpfbPacket

    from media.transport.srtp_intake import receiver_reports

    rr = _rr([(1, 0, 0, 0, 0, 0, 0)])
    nack = bytes(RtcpRtpfbPacket(fmt=1, ssrc=1, media_ssrc=2, lost=[10, 11]))
    pli = bytes(RtcpPsfbPacket(fmt=1, ssrc=1, media_ssrc=2))
    assert receiver_reports(rr + nack) is None
    assert receiver_reports(pli + rr) is None
    assert receiver_reports(rr[:-4]) is None  # truncated
    assert receiver_reports(b"") == []
