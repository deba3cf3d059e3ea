"""Sender reports packed in place (media.sender_report) are what aiortc would have sent, protected."""

from __future__ import annotations

import os
import time

from aiortc import clock
from aiortc.rtp import RtcpPacket, RtcpSdesPacket, RtcpSenderInfo, RtcpSrPacket
from pylibsrtp import Policy, Session

from media.sender_report import SenderReportWriter, ntp_time


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
