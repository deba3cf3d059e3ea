"""Sender reports: each outbound stream's RTCP SR, built and protected in one buffer, on one timer.

Every connected point gets a sender report per second for video (every 5 s for audio), so with
hundreds of points they were the largest Python cost of a media worker after the fan-out itself:
aiortc builds packet objects, concatenates bytes, copies through pylibsrtp and sends through
aioice and asyncio (about 120 us each on this VM). Here the SR and the SDES CNAME are packed into a
fixed C buffer, protected in place by the same libsrtp session (``srtp_protect_rtcp``, in a
media.egress.srtp_writer.SrtpBuffer) and sent on the ICE socket directly, like the RTP itself. One schedule then sends every
stream's reports of a process from one timer (media.core.job_schedule) instead of a sleeping task per stream.
"""

from __future__ import annotations

import logging
import random
import struct
from collections.abc import Callable
from typing import Any

import pylibsrtp
from aiortc.rtp import RTCP_SDES, RTCP_SR

from media import aiortc_compat
from media.aiortc_compat import srtp_lib
from media.core import job_schedule
from media.core.job_schedule import JobSchedule
from media.core.source import NTP_EPOCH_OFFSET
from media.egress.srtp_writer import V2, SrtpBuffer

log = logging.getLogger(__name__)
_sr = struct.Struct("!BBHIIIIII")  # V/P/RC, PT=200, length, SSRC, NTP hi, NTP lo, RTP ts, packets, octets


def ntp_time(wall: float) -> int:
    """64-bit NTP timestamp (RFC 3550 section 4) of a ``time.time()`` instant."""
    return int((wall + NTP_EPOCH_OFFSET) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def sdes_cname(ssrc: int, cname: str) -> bytes:
    """An SDES packet with one chunk: the CNAME item, ended and padded to a 32-bit boundary."""
    text = cname.encode()[:255]
    chunk = struct.pack("!IBB", ssrc, 1, len(text)) + text + b"\x00"
    chunk += b"\x00" * (-len(chunk) % 4)
    return struct.pack("!BBH", 0x81, RTCP_SDES, len(chunk) // 4) + chunk


class SenderReportWriter:
    __slots__ = ("_buffer", "_sendto", "_addr", "_ssrc", "_sdes", "sent", "drops")

    def __init__(self, session: pylibsrtp.Session, sendto: Callable, addr: tuple, ssrc: int, cname: str | None) -> None:
        self._sdes = sdes_cname(ssrc, cname) if cname else b""
        self._buffer = SrtpBuffer(session, srtp_lib.srtp_protect_rtcp, _sr.size + len(self._sdes))
        self._sendto = sendto
        self._addr = addr
        self._ssrc = ssrc
        self.sent = 0
        self.drops = 0

    def send(self, ntp: int, rtp_ts: int, packets: int, octets: int) -> bool:
        """Protect and send SR (+ SDES); False if it could not leave (the next one will)."""
        view = self._buffer.view
        _sr.pack_into(view, 0, V2, RTCP_SR, 6, self._ssrc, ntp >> 32, ntp & 0xFFFFFFFF, rtp_ts & 0xFFFFFFFF,
                      packets & 0xFFFFFFFF, octets & 0xFFFFFFFF)
        end = _sr.size + len(self._sdes)
        view[_sr.size:end] = self._sdes  # the last protect encrypted it in place
        data = self._buffer.seal(end)
        if data is None:
            self.drops += 1
            return False
        try:
            self._sendto(data, self._addr)
        except OSError:  # buffer full or path gone: RTCP is periodic, the next report follows
            self.drops += 1
            return False
        self.sent += 1
        return True


class ReportJob:
    """When one stream's next report is due, and what it says (libwebrtc's cadence).

    The first report follows about ``first`` s after media starts, then every ``interval`` s
    (randomised by ±50 %, RFC 3550 section 6.3.1); a stream that sent nothing since its last
    report stays quiet and starts over, so a point waiting for the speaker costs nothing here.
    """

    __slots__ = ("stream", "sender", "writer", "first", "interval", "reported", "active")

    def __init__(self, stream: Any, sender: Any, first: float, interval: float) -> None:
        self.stream = stream
        self.sender = sender  # aiortc RTCRtpSender: its RTT estimate needs what the report said
        self.writer: SenderReportWriter | None = None  # set once the point is connected
        self.first = first
        self.interval = interval
        self.reported = 0
        self.active = True

    def first_delay(self) -> float:
        return self.first * (0.5 + random.random())

    def fire(self, wall: float) -> float:
        """Send the report if there is news; the seconds until the next one."""
        stream = self.stream
        packets = stream.packets
        if packets == self.reported or self.writer is None:
            return self.first_delay()
        delay = (self.interval if self.reported else self.first) * (0.5 + random.random())
        self.reported = packets
        ntp = ntp_time(wall)
        aiortc_compat.note_sender_report(self.sender, ntp, wall, packets)
        self.writer.send(ntp, stream.rtp_timestamp_now(wall), packets, stream.octets)
        return delay


def schedule() -> JobSchedule:
    """The running loop's schedule of sender reports (media.core.job_schedule)."""
    return job_schedule.schedule("sender reports")
