"""Sender reports packed in place (media.egress.sender_report) are what aiortc would have sent, protected."""

from __future__ import annotations

import os
import time

from aiortc import clock
from aiortc.rtp import RtcpPacket, RtcpSdesPacket, RtcpSenderInfo, RtcpSrPacket
from pylibsrtp import Policy, Session

from media.egress.sender_report import SenderReportWriter, ntp_time


def sessions() -> tuple[Session, Session]:
    key = os.urandom(30)
    return (Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND)),
            Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND)))


def test_report_decrypts_to_aiortcs_sr_and_cname():
    tx, rx = sessions()
    sent: list[tuple[bytes, tuple]] = []
    writer = SenderReportWriter(tx, lambda data, addr: sent.append((bytes(data), addr)), ("127.0.0.1", 9), 0xCAFE,
                                "điểm-cầu")
    ntp = ntp_time(time.time())
    for i in range(3):  # the buffer is reused: each report is complete on its own
        assert writer.send(ntp + i, 90000 + i, (1 << 32) + 5 + i, 123456 + i)
    assert writer.sent == 3 and len(sent) == 3 and sent[0][1] == ("127.0.0.1", 9)
    plain = rx.unprotect_rtcp(sent[2][0])
    expected = bytes(RtcpSrPacket(ssrc=0xCAFE, sender_info=RtcpSenderInfo(
        ntp_timestamp=ntp + 2, rtp_timestamp=90002, packet_count=7, octet_count=123458)))
    assert plain[:len(expected)] == expected  # counters wrap at 32 bits, as RFC 3550 says
    assert len(plain) % 4 == 0
    sr, sdes = RtcpPacket.parse(plain)  # SDES: one null ends the items, then padding to 32 bits
    assert isinstance(sr, RtcpSrPacket) and sr.sender_info.packet_count == 7
    assert isinstance(sdes, RtcpSdesPacket) and sdes.chunks[0].ssrc == 0xCAFE
    assert sdes.chunks[0].items == [(1, "điểm-cầu".encode())]


def test_ntp_time_matches_aiortcs_clock():
    assert abs((ntp_time(time.time()) >> 32) - (clock.current_ntp_time() >> 32)) <= 1


def test_a_full_socket_costs_one_report_not_the_stream():
    tx, _rx = sessions()

    def full(data, addr):
        raise BlockingIOError

    writer = SenderReportWriter(tx, full, ("127.0.0.1", 9), 1, None)
    assert not writer.send(ntp_time(time.time()), 1, 1, 1)
    assert writer.drops == 1 and writer.sent == 0


class _Stream:
    """What a ReportJob reads from an OutboundStream."""

    def __init__(self) -> None:
        self.packets = 0
        self.octets = 0

    def rtp_timestamp_now(self, wall: float) -> int:
        return int(wall * 90000) & 0xFFFFFFFF


class _Sender:
    pass


async def test_one_timer_reports_streams_with_news_and_skips_quiet_or_gone_ones():
    import asyncio

    from media.egress.sender_report import ReportJob, schedule

    tx, rx = sessions()
    sent: list[bytes] = []
    writer = SenderReportWriter(tx, lambda data, addr: sent.append(bytes(data)), ("127.0.0.1", 9), 7, None)
    live, quiet, gone = _Stream(), _Stream(), _Stream()
    jobs = [ReportJob(s, _Sender(), 0.05, 0.1) for s in (live, quiet, gone)]
    for job in jobs:
        job.writer = writer
        schedule().add(job)
    gone.packets = quiet.packets = 0
    jobs[2].active = False  # its consumer left
    for _ in range(40):  # ~1 s, bounded
        live.packets += 10
        live.octets += 10_000
        gone.packets += 10
        await asyncio.sleep(0.025)
    # live: first after 25-75 ms, second 25-75 ms later, then every 50-150 ms -> 7 to 20 in ~1 s
    assert 7 <= len(sent) <= 20, len(sent)
    ssrcs = {RtcpPacket.parse(rx.unprotect_rtcp(data))[0].ssrc for data in sent}
    assert ssrcs == {7}
    assert jobs[0].sender._RTCRtpSender__packet_count == jobs[0].reported > 0  # aiortc's RTT estimate
    assert len(schedule()) == 2  # the gone job is dropped at its next turn; the quiet one waits
