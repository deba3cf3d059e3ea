"""SenderReportWriter: one outbound stream's RTCP sender report, built and protected in one buffer.

Every connected point gets a sender report per second for video (every 5 s for audio), so with
hundreds of points they were the largest Python cost of a media worker after the fan-out itself:
aiortc builds packet objects, concatenates bytes, copies through pylibsrtp and sends through
aioice and asyncio (about 120 us each on this VM). Here the SR and the SDES CNAME are packed into a
fixed C buffer, protected in place by the same libsrtp session (``srtp_protect_rtcp``) and sent on
the ICE socket directly, like the RTP itself (media.outbound).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pylibsrtp
from pylibsrtp._binding import ffi, lib

NTP_OFFSET = 2208988800  # seconds from 1900 (NTP) to 1970 (Unix)
TRAILER = 144  # room for libsrtp's SRTCP trailer (index, tag, MKI)
_sr = struct.Struct("!BBHIIIIII")  # V/P/RC, PT=200, length, SSRC, NTP hi, NTP lo, RTP ts, packets, octets


def ntp_time(wall: float) -> int:
    """64-bit NTP timestamp (RFC 3550 section 4) of a ``time.time()`` instant."""
    return int((wall + NTP_OFFSET) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def sdes_cname(ssrc: int, cname: str) -> bytes:
    """An SDES packet with one chunk: the CNAME item, ended and padded to a 32-bit boundary."""
    text = cname.encode()[:255]
    chunk = struct.pack("!IBB", ssrc, 1, len(text)) + text + b"\x00"
    chunk += b"\x00" * (-len(chunk) % 4)
    return struct.pack("!BBH", 0x81, 202, len(chunk) // 4) + chunk


class SenderReportWriter:
    __slots__ = ("_session", "_ctx", "_cdata", "_view", "_len", "_sendto", "_addr", "_ssrc", "_sdes", "sent", "drops")

    def __init__(self, session: pylibsrtp.Session, sendto: Callable, addr: tuple, ssrc: int, cname: str | None) -> None:
        self._session = session  # keeps the srtp_t alive
        self._ctx = session._srtp[0]
        self._sdes = sdes_cname(ssrc, cname) if cname else b""
        self._cdata = ffi.new("char[]", _sr.size + len(self._sdes) + TRAILER)
        self._view = memoryview(ffi.buffer(self._cdata))
        self._len = ffi.new("int *")
        self._sendto = sendto
        self._addr = addr
        self._ssrc = ssrc
        self.sent = 0
        self.drops = 0

    def send(self, ntp: int, rtp_ts: int, packets: int, octets: int) -> bool:
        """Protect and send SR (+ SDES); False if it could not leave (the next one will)."""
        view = self._view
        _sr.pack_into(view, 0, 0x80, 200, 6, self._ssrc, ntp >> 32, ntp & 0xFFFFFFFF, rtp_ts & 0xFFFFFFFF,
                      packets & 0xFFFFFFFF, octets & 0xFFFFFFFF)
        end = _sr.size + len(self._sdes)
        view[_sr.size:end] = self._sdes  # the last protect encrypted it in place
        length = self._len
        length[0] = end
        if lib.srtp_protect_rtcp(self._ctx, self._cdata, length):
            self.drops += 1
            return False
        try:
            self._sendto(view[:length[0]], self._addr)
        except OSError:  # buffer full or path gone: RTCP is periodic, the next report follows
            self.drops += 1
            return False
        self.sent += 1
        return True
