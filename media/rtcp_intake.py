"""RTCP from a connected point, handled in the socket's datagram callback.

aiortc takes every datagram through aioice's STUN parse attempt, an asyncio queue and a wake-up of
the DTLS transport's receive task before it unprotects it. Points send a receiver report about
every second (and NACKs, PLIs), so with hundreds of points that hop was a visible share of a media
worker's Python time. Once a point is connected, SRTCP is unprotected, parsed and routed to its
RTP senders right where the datagram arrives; everything else (STUN, DTLS) takes aiortc's way.

The senders' RTCP handlers (media.consumer: quality, NACK answers, keyframe requests, then
aiortc's own RTT estimate) never wait on anything, so they are run to completion in place.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

import pylibsrtp
from aiortc.rtp import RtcpPacket, is_rtcp

log = logging.getLogger(__name__)


def run_inline(coro: Coroutine[Any, Any, None]) -> bool:
    """Run a coroutine that never suspends; True if it completed."""
    try:
        coro.send(None)
    except StopIteration:
        return True
    coro.close()  # it waited on something: not an RTCP handler of ours
    log.warning("an RTCP handler suspended; its remainder was dropped")
    return False


class RtcpIntake:
    """The diversion on one socket; ``datagrams`` counts the SRTCP datagrams it took."""

    __slots__ = ("dtls", "datagrams", "_original")

    def __init__(self, protocol: Any, dtls: Any) -> None:
        self.dtls = dtls
        self.datagrams = 0
        self._original = protocol.datagram_received
        protocol.datagram_received = self.datagram_received

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if 127 < data[0] < 192 and is_rtcp(data):
            self.datagrams += 1
            self.handle(data)
        else:
            self._original(data, addr)

    def handle(self, data: bytes) -> None:
        """Unprotect, parse and route one SRTCP datagram as RTCDtlsTransport would, without its queue."""
        dtls = self.dtls
        try:
            plain = dtls._rx_srtp.unprotect_rtcp(data)
        except pylibsrtp.Error:
            return  # not authentic (or a replay): dropped, as aiortc does
        try:
            packets = RtcpPacket.parse(plain)
        except ValueError:
            return
        for packet in packets:
            for recipient in dtls._rtp_router.route_rtcp(packet):
                run_inline(recipient._handle_rtcp_packet(packet))


def install(protocol: Any, dtls: Any) -> RtcpIntake | None:
    """Divert SRTCP arriving on a connected point's ICE socket (aioice ``StunProtocol``), once."""
    if isinstance(getattr(protocol, "rtcp_intake", None), RtcpIntake) or dtls._rx_srtp is None:
        return getattr(protocol, "rtcp_intake", None)
    protocol.rtcp_intake = RtcpIntake(protocol, dtls)
    return protocol.rtcp_intake
