"""Packets built and SRTP-protected in place, in one C buffer per writer: the Python path's one builder.

pylibsrtp's ``Session.protect`` checks types, copies the packet into its buffer and slices a new
``bytes`` out (about 1 us per call). Here the header is packed straight into our own buffer, the
protect function (libsrtp's, or the stream's own AES-GCM, media.egress.srtp_gcm) works on it in
place and the socket sends from a view of it: no intermediate objects. ``SrtpWriter`` builds RTP
(forwarding on the Python path, fast start without the C loop, retransmissions); sender reports
use ``SrtpBuffer`` with libsrtp's RTCP protect (media.egress.sender_report). The C loop builds its
own packets (media/native/fastpath.c). Uses pylibsrtp's cffi binding (through media.aiortc_compat).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pylibsrtp

from media.aiortc_compat import srtp_context, srtp_ffi, srtp_lib

if TYPE_CHECKING:
    from media.egress.srtp_gcm import GcmProtect

MTU = 1500  # the largest RTP packet forwarded (the C loop's FP_MTU)
TRAILER = pylibsrtp.SRTP_MAX_TRAILER_LEN  # room for what SRTP/SRTCP protect appends (tag, SRTCP index, MKI)
RTP_HEADER = struct.Struct("!BBHII")  # V=2 (0x80), M|PT, sequence number, timestamp, SSRC
V2 = 0x80  # RTP version 2, no padding, extension or CSRCs
_pack_header = RTP_HEADER.pack_into
_HEADER_SIZE = RTP_HEADER.size


class SrtpBuffer:
    """One C buffer that a packet is written into (at ``view``) and protected in place by
    ``protect(ctx, buf, len_ptr)`` (``srtp_protect``'s contract); ``ctx`` defaults to the session's
    libsrtp context."""

    __slots__ = ("_session", "ctx", "_protect", "_cdata", "view", "_len")

    def __init__(self, session: pylibsrtp.Session, protect: Callable[..., int], size: int, ctx: Any = None) -> None:
        self._session = session  # keeps the srtp_t alive
        self.ctx = srtp_context(session) if ctx is None else ctx
        self._protect = protect
        self._cdata = srtp_ffi.new("char[]", size + TRAILER)
        self.view = memoryview(srtp_ffi.buffer(self._cdata))
        self._len = srtp_ffi.new("int *")

    def seal(self, size: int) -> memoryview | None:
        """Protect the ``size`` bytes written at the buffer's start; a view of the result, or None."""
        length = self._len
        length[0] = size
        if self._protect(self.ctx, self._cdata, length):
            return None
        return self.view[: length[0]]


class SrtpWriter(SrtpBuffer):
    """RTP packets of one SRTP context: the session's (libsrtp) or, with ``gcm``, the stream's own."""

    __slots__ = ()

    def __init__(self, session: pylibsrtp.Session, gcm: GcmProtect | None = None) -> None:
        if gcm is None:
            super().__init__(session, srtp_lib.srtp_protect, MTU)
        else:
            super().__init__(session, gcm.protect, MTU, gcm.ctx)

    def packet(self, b1: int, seq: int, ts: int, ssrc: int, payload: bytes) -> memoryview | None:
        """Build and protect an RTP packet (``b1``: marker and payload type); a view of it, valid
        until the next call, or None when it is over the MTU or the protect failed."""
        size = _HEADER_SIZE + len(payload)
        if size > MTU:
            return None
        view = self.view
        _pack_header(view, 0, V2, b1, seq, ts, ssrc)
        view[_HEADER_SIZE:size] = payload
        return self.seal(size)
