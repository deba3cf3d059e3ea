"""Receiver reports read straight from an SRTCP compound's bytes (RFC 3550 6.4.2).

A point sends one compound of receiver reports and SDES about every second; at hundreds of points
building aiortc's packet objects and running its handlers for them was most of an idle point's
cost. The peer's transport (media.transport.webrtc_transport) hands the blocks of such a compound
to the consumer directly; anything else takes aiortc's parser.
"""

from __future__ import annotations

import struct

from aiortc.rtp import RTCP_RR, RTCP_SDES

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
