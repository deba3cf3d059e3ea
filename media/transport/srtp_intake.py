"""SRTP and SRTCP handled in the socket's datagram callback, once a peer is connected.

aiortc takes every datagram through aioice's STUN parse attempt, an asyncio queue and a wake-up of
the DTLS transport's receive task before it unprotects it. For the speaker that hop is paid on every
one of ~300 packets a second in the ingest, which also records and serves the API; for a point it is
paid on every receiver report (about one a second, times hundreds of points in a media worker).
Once connected, SRTP/SRTCP is unprotected, parsed and routed right where the datagram arrives,
exactly as ``RTCDtlsTransport._recv_next`` would; everything else (STUN, DTLS) takes aiortc's way.

The handlers (media.ingest.producer / media.egress.consumer over aiortc's receiver and sender code) only send,
and sending never waits, so they normally run to completion in place (:func:`drive`). Should one
ever wait on something, its remainder continues on the event loop like a task: nothing is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pylibsrtp
from aiortc.rtp import RTCP_RR, RTCP_SDES, RtcpPacket, RtpPacket, is_rtcp

from media.transport.consent_answer import ConsentAnswer

log = logging.getLogger(__name__)

NTP_EPOCH_MS = 2_208_988_800_000  # 1900-01-01 to 1970-01-01: aiortc.clock.current_ms without datetime


class _Resume:
    """Continues a coroutine that suspended inside :func:`drive`, the way an asyncio Task would."""

    __slots__ = ("coro",)

    def __init__(self, coro: Coroutine[Any, Any, None], yielded: Any) -> None:
        self.coro = coro
        self._wait(yielded)

    def _wait(self, yielded: Any) -> None:
        if yielded is None:  # a bare yield (asyncio.sleep(0)): next loop iteration
            asyncio.get_running_loop().call_soon(self._step)
        else:
            yielded._asyncio_future_blocking = False
            yielded.add_done_callback(lambda _f: self._step())

    def _step(self) -> None:
        try:
            yielded = self.coro.send(None)
        except StopIteration:
            return
        except Exception:
            log.exception("an SRTP handler failed")
            return
        self._wait(yielded)


def drive(coro: Coroutine[Any, Any, None]) -> bool:
    """Run ``coro`` in place; True if it completed there, False if it suspended (it then goes on
    on the event loop)."""
    try:
        yielded = coro.send(None)
    except StopIteration:
        return True
    except Exception:
        log.exception("an SRTP handler failed")
        return True
    _Resume(coro, yielded)
    return False


# (ssrc, fraction_lost /256, cumulative packets lost, highest seq, jitter, lsr, dlsr)
ReportBlock = tuple[int, int, int, int, int, int, int]
_BLOCK = struct.Struct("!IIIIII")


def receiver_reports(data: bytes) -> list[ReportBlock] | None:
    """The report blocks of a compound holding only receiver reports and SDES (what a point sends
    every second), parsed without building packet objects; None for anything else (NACK, PLI,
    REMB, padding...), which takes aiortc's parser."""
    blocks: list[ReportBlock] = []
    pos, end = 0, len(data)
    while pos < end:
        if end - pos < 4:
            return None
        first, pt = data[pos], data[pos + 1]
        size = (((data[pos + 2] << 8) | data[pos + 3]) + 1) * 4
        if first >> 6 != 2 or first & 0x20 or pos + size > end:
            return None
        if pt == RTCP_RR:
            count = first & 0x1F
            if 8 + 24 * count > size:
                return None
            for i in range(count):
                ssrc, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, pos + 8 + 24 * i)
                cumulative = lost & 0xFFFFFF
                if cumulative & 0x800000:
                    cumulative -= 0x1000000
                blocks.append((ssrc, lost >> 24, cumulative, highest, jitter, lsr, dlsr))
        elif pt != RTCP_SDES:
            return None
        pos += size
    return blocks


class SrtpIntake:
    """The diversion on one ICE socket. ``rtp`` also takes SRTP (a publisher's socket; a point's
    socket only carries its RTCP). ``datagrams`` counts what it took. With ``on_report`` set, plain
    receiver reports go to it block by block (:func:`receiver_reports`) instead of through aiortc's
    packet objects and handlers: at hundreds of points that was most of an idle point's cost."""

    __slots__ = ("dtls", "rtp", "datagrams", "short_reports", "on_report", "consent", "_original")

    def __init__(self, protocol: Any, dtls: Any, rtp: bool) -> None:
        self.dtls = dtls
        self.rtp = rtp
        self.datagrams = 0
        self.short_reports = 0  # datagrams that took the short path
        self.on_report: Callable[[ReportBlock], None] | None = None
        self.consent: ConsentAnswer | None = None  # answers plain consent checks (media.transport.consent_answer)
        self._original = protocol.datagram_received
        protocol.datagram_received = self.datagram_received

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if not data:
            return  # an empty datagram (anyone can send one): nothing to route, no byte to sort on
        if 127 < data[0] < 192:
            if is_rtcp(data):
                self.datagrams += 1
                self.handle_rtcp(data)
                return
            if self.rtp:
                self.datagrams += 1
                self.handle_rtp(data)
                return
        elif data[0] < 2 and self.consent is not None and self.consent.answer(data, addr):
            return
        self._original(data, addr)

    def _count(self, size: int) -> None:
        # aiortc's transport stats (getStats) count every datagram its receive task saw.
        dtls = self.dtls
        dtls._RTCDtlsTransport__rx_bytes += size
        dtls._RTCDtlsTransport__rx_packets += 1

    def handle_rtp(self, data: bytes) -> None:
        arrival_time_ms = int(time.time() * 1000) + NTP_EPOCH_MS
        dtls = self.dtls
        self._count(len(data))
        try:
            plain = dtls._rx_srtp.unprotect(data)
        except pylibsrtp.Error:
            return  # not authentic (or a replay): dropped, as aiortc does
        try:
            packet = RtpPacket.parse(plain, dtls._rtp_header_extensions_map)
        except ValueError:
            return
        receiver = dtls._rtp_router.route_rtp(packet)
        if receiver is not None:
            drive(receiver._handle_rtp_packet(packet, arrival_time_ms))

    def handle_rtcp(self, data: bytes) -> None:
        """Unprotect, parse and route one SRTCP datagram as RTCDtlsTransport would, without its queue."""
        dtls = self.dtls
        self._count(len(data))
        try:
            plain = dtls._rx_srtp.unprotect_rtcp(data)
        except pylibsrtp.Error:
            return
        on_report = self.on_report
        if on_report is not None:
            blocks = receiver_reports(plain)
            if blocks:  # (an empty report still goes the long way: it must reach liveness there)
                self.short_reports += 1
                for block in blocks:
                    on_report(block)
                return
        try:
            packets = RtcpPacket.parse(plain)
        except (ValueError, struct.error):
            return
        for packet in packets:
            try:
                recipients = dtls._rtp_router.route_rtcp(packet)
            except (ValueError, struct.error):  # aiortc reads a REMB's SSRCs as many as it claims
                continue
            for recipient in recipients:
                drive(recipient._handle_rtcp_packet(packet))


def install(protocol: Any, dtls: Any, rtp: bool = False) -> SrtpIntake | None:
    """Divert SRTP/SRTCP arriving on a connected peer's ICE socket (aioice ``StunProtocol``), once."""
    current = getattr(protocol, "srtp_intake", None)
    if isinstance(current, SrtpIntake) or dtls._rx_srtp is None:
        return current
    protocol.srtp_intake = SrtpIntake(protocol, dtls, rtp)
    return protocol.srtp_intake
