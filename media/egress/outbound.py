"""OutboundStream: one kind of one consumer; rewrites a source packet's header and sends it.

This is the hot path. Per packet and subscriber: one ``struct.pack`` of the 12-byte header, one SRTP
protect (libsrtp, C) and one non-blocking ``sendto``. Header extensions are not forwarded: the answer
signals the SSRCs, so receivers demultiplex by SSRC.

One rule keeps SRTP safe: an SRTP index (SSRC, rollover counter, sequence number) never protects two
different plaintexts, which with AES-GCM would reuse an IV (and give away the authentication key).
So a retransmission either goes over RTX (RFC 4588: its own SSRC and sequence numbers, one index per
retransmission) or repeats the original packet byte for byte; only streams with RTX may be padded by
the C loop (media.egress.fanout), and only indexes of the current source's epoch are ever answered.
"""

from __future__ import annotations

import logging
import os
import random
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pylibsrtp

from media.egress import fanout
from media.core.source import SourceStream
from media.egress.srtp_writer import MTU, SrtpWriter, header_struct

_pack_into = header_struct.pack_into

if TYPE_CHECKING:
    from media.egress.gop_replay import GopReplay
    from media.core.router import Router
    from media.egress.srtp_gcm import GcmProtect

log = logging.getLogger(__name__)
_osn = struct.Struct("!H").pack  # RTX payload header: the original sequence number

NACK_HOLD = 0.05  # seconds before the same packet is retransmitted again
NACK_RATE = 400.0  # retransmissions per second a stream may send (video at 2 Mbit/s is ~200 packets/s)
NACK_BURST = 200  # ... and at once
NACK_TRACKED = 512  # recently answered sequence numbers kept for NACK_HOLD


class OutboundStream:
    __slots__ = (
        "kind",
        "ssrc",
        "pts",
        "pt",
        "clock_rate",
        "router",
        "source",
        "seq_off",
        "ts_off",
        "last_seq",
        "last_ts",
        "_packets",
        "_octets",
        "retransmits",
        "_drops",
        "keyframe_requests",
        "_writer",
        "_ctx",
        "_protect",
        "_cdata",
        "_view",
        "_length",
        "_sendto",
        "_addr",
        "on_failure",
        "started",
        "_fp",
        "_fd",
        "_partner",
        "fast",
        "first_sent_at",
        "catch_up",
        "fast_started",
        "srtp",
        "rtx",
        "rtx_pt",
        "rtx_ssrc",
        "rtx_seq",
        "_rtx_writer",
        "epoch_first",
        "epoch_mark",
        "nacks_refused",
        "_nack_budget",
        "_nack_refill",
        "_recent_nacks",
    )

    def __init__(
        self, kind: str, ssrc: int, pts: dict[str, int], clock_rate: int,
        rtx: dict[int, int] | None = None, rtx_ssrc: int = 0,
    ) -> None:
        self.kind = kind
        self.ssrc = ssrc
        self.pts = pts  # codec key ("video/h264") -> negotiated payload type
        self.pt = -1
        self.clock_rate = clock_rate
        self.router: Router | None = None
        self.source: SourceStream | None = None
        self.seq_off = random.randint(0, 0x7FFF)
        self.ts_off = random.getrandbits(32)
        self.last_seq = 0
        self.last_ts = 0
        self._packets = 0
        self._octets = 0
        self.retransmits = 0
        self._drops = 0
        self.keyframe_requests = 0
        self._writer: SrtpWriter | None = None
        self._ctx = None
        self._protect: Callable | None = None
        self._cdata = None
        self._view: memoryview | None = None
        self._length = None
        self._sendto: Callable | None = None
        self._addr: tuple | None = None
        self.on_failure: Callable[[], None] | None = None
        self.started = False
        self._fp = None  # C target (media.egress.fanout), when the fast path is built
        self._fd = -1
        self._partner: OutboundStream | None = None  # the point's stream of the other kind, same socket
        self.fast = False  # currently forwarded by the C loop
        self.first_sent_at: float | None = None  # time.time() of the first packet (video: a keyframe)
        self.catch_up: GopReplay | None = None  # replaying the current GOP (media.egress.gop_replay): live waits
        self.fast_started = False  # began with such a replay instead of a keyframe request
        self.srtp = ""  # what protects its RTP once bound: "aes-gcm" (media.egress.srtp_gcm) or "libsrtp"
        self.rtx = rtx or {}  # negotiated payload type -> its RTX payload type (RFC 4588)
        self.rtx_pt = -1  # RTX payload type of the current ``pt``, -1 when the point has none for it
        self.rtx_ssrc = rtx_ssrc
        self.rtx_seq = random.randint(0, 0xFFFF)
        self._rtx_writer: SrtpWriter | None = None
        self.epoch_first = 0  # our sequence number of the current source's first packet
        self.epoch_mark = 0  # the source's packet count then
        self.nacks_refused = 0  # NACKs not answered: before the epoch, not yet sent, or over budget
        self._nack_budget = float(NACK_BURST)
        self._nack_refill = 0.0
        self._recent_nacks: dict[int, float] = {}  # our seq -> monotonic time it was last answered

    # Counters: what the Python path sent plus what the C loop sent.
    @property
    def packets(self) -> int:
        return self._packets + (self._fp.packets if self._fp is not None else 0)

    @property
    def octets(self) -> int:
        return self._octets + (self._fp.octets if self._fp is not None else 0)

    @property
    def sends(self) -> int:
        """Send calls: one per packet on the Python path; in the C loop one per batch and point
        (a sendmmsg of its GSO runs), or one per run (``fanout.runs_together(False)``)."""
        return self._packets + (self._fp.sends if self._fp is not None else 0)

    @property
    def runs(self) -> int:
        """Datagram groups handed to the kernel: a GSO run counts one, a lone datagram one."""
        return self._packets + (self._fp.runs if self._fp is not None else 0)

    @property
    def drops(self) -> int:
        return self._drops + (self._fp.drops if self._fp is not None else 0)

    def bind(
        self, session: pylibsrtp.Session, sendto: Callable, addr: tuple, fd: int = -1, gcm: GcmProtect | None = None
    ) -> None:
        """Attach the subscriber's SRTP session and UDP path (once DTLS is connected).

        With ``fd`` (the ICE socket's descriptor) the stream can also go on the C fast path; it
        keeps a duplicate of the descriptor, so a socket closed under it is never a reused number.
        With ``gcm`` (media.egress.srtp_gcm) every RTP packet of the stream is protected by that context.
        """
        self._writer = SrtpWriter(session, gcm)
        # RTX is another SSRC: libsrtp's session keeps its own rollover counter for it.
        self._rtx_writer = SrtpWriter(session) if self.rtx and self.rtx_ssrc else None
        # The forward path's own buffer (retransmissions use the writer's, so they never clash).
        fast = SrtpWriter(session, gcm)
        self._ctx, self._cdata, self._view, self._length = fast._ctx, fast._cdata, fast._view, fast._len
        self._protect = fast._protect
        self.srtp = "libsrtp" if gcm is None else "aes-gcm"
        self._sendto = sendto
        self._addr = addr
        if fd >= 0 and fanout.enabled():
            dup = os.dup(fd)
            target = fanout.new_target(self._ctx, dup, addr[0], addr[1], gcm.address if gcm is not None else 0)
            if target is None:
                os.close(dup)
            else:
                self._fp, self._fd = target, dup

    def sync_target(self) -> None:
        """Give the C target this stream's numbering before the C loop sends for it. Padding only
        where retransmissions leave over RTX: a padded packet could not be repeated byte for byte."""
        t = self._fp
        t.seq_off, t.ts_off, t.pt, t.ssrc = self.seq_off, self.ts_off, self.pt, self.ssrc
        t.pad_ok = 1 if self.rtx_pt >= 0 else 0

    def path_pinned(self) -> None:
        """The socket is now connected to the point (media.transport.pinned_path): the C loop sends without
        an address, on the route the socket keeps. The Python path's sends still name it, which a
        connected UDP socket accepts."""
        if self._fp is not None:
            self._fp.addrlen = 0

    def pair_with(self, other: OutboundStream) -> None:
        """Mark ``other`` as the same point's stream of the other kind on the same socket and path:
        the C loop may then send both streams' packets of one wake-up in the same calls
        (media.egress.fanout.FastFanout.flush_with). Each holds the other, so neither target is freed under the other."""
        if self._fp is None or other._fp is None or self._addr != other._addr:
            return
        self._partner, other._partner = other, self
        self._fp.partner, other._fp.partner = other._fp, self._fp

    def _unpair(self) -> None:
        other = self._partner
        if other is None:
            return
        self._partner = other._partner = None
        if self._fp is not None:
            self._fp.partner = fanout.ffi.NULL
        if other._fp is not None:
            other._fp.partner = fanout.ffi.NULL

    def release(self) -> None:
        """Give back the duplicated descriptor (the stream has left its router)."""
        self._unpair()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            if self._fp is not None:
                self._fp.fd = -1

    def accepts(self, source: SourceStream) -> bool:
        return source.codec in self.pts

    def _rebase(self, source: SourceStream, seq: int, ts: int) -> None:
        """Continue our numbering across a change of source: next seq, timestamp advanced by wall time."""
        previous = self.source
        if previous is not None and self.started:
            out_seq = (self.last_seq + self.seq_off + 1) & 0xFFFF
            gap = max(1, int((source.last_arrival - previous.last_arrival) * self.clock_rate))
            out_ts = (self.last_ts + self.ts_off + gap) & 0xFFFFFFFF
            self.seq_off = (out_seq - seq) & 0xFFFF
            self.ts_off = (out_ts - ts) & 0xFFFFFFFF
        self.source = source
        self.pt = self.pts.get(source.codec, -1)
        self.rtx_pt = self.rtx.get(self.pt, -1) if self._rtx_writer is not None else -1
        self.epoch_first = (seq + self.seq_off) & 0xFFFF
        self.epoch_mark = source.packets - 1  # this packet is counted already (Router.on_rtp)
        self._recent_nacks.clear()
        self.started = True
        if self.first_sent_at is None:
            self.first_sent_at = time.time()

    def forward(self, source: SourceStream, seq: int, ts: int, marker: int, payload: bytes, key: bool) -> None:
        """The hot path: rewrite, protect in place, send. Kept in one function on purpose."""
        if self.catch_up is not None:
            self.catch_up.advance()  # replaying the GOP: this packet is sent from the history, in order
            return
        if source is not self.source:
            if self.kind == "video" and not key:
                if self.router is not None:
                    self.router.request_keyframe(self)
                return
            self._rebase(source, seq, ts)
        if self.pt < 0 or self._ctx is None:
            return
        self.last_seq = seq
        self.last_ts = ts
        size = 12 + len(payload)
        if size > MTU:
            self._drops += 1
            return
        view = self._view
        _pack_into(
            view, 0, 0x80, (marker << 7) | self.pt,
            (seq + self.seq_off) & 0xFFFF, (ts + self.ts_off) & 0xFFFFFFFF, self.ssrc,
        )
        view[12:size] = payload
        length = self._length
        length[0] = size
        if self._protect(self._ctx, self._cdata, length):
            self._drops += 1
            return
        try:
            self._sendto(view[: length[0]], self._addr)
        except (BlockingIOError, ConnectionRefusedError):
            # socket buffer full: drop rather than queue (the subscriber NACKs); or an ICMP
            # port-unreachable reported on a pinned socket (media.transport.pinned_path): RTCP and consent judge
            self._drops += 1
            return
        except OSError:
            self._drops += 1
            if self.on_failure is not None:
                self.on_failure()
            return
        self._packets += 1
        self._octets += len(payload)

    def _send(self, writer: SrtpWriter, b1: int, seq: int, ts: int, ssrc: int, payload: bytes) -> None:
        """Slow path for retransmissions (the retransmission writer's own buffer)."""
        data = writer.packet(b1, seq, ts, ssrc, payload)
        if data is None:
            self._drops += 1
            return
        try:
            self._sendto(data, self._addr)  # type: ignore[misc]
        except OSError:
            self._drops += 1

    def sent_in_epoch(self, out_seq: int) -> bool:
        """Whether ``out_seq`` is one of ours already sent from the current source: only those may be
        answered (an older one mapped through today's offset would be other media under a used index)."""
        source = self.source
        if source is None or not self.started:
            return False
        last_out = ((self._fp.last_seq if self.fast else self.last_seq) + self.seq_off) & 0xFFFF
        behind = (last_out - out_seq) & 0xFFFF
        if behind >= 0x8000:
            return False  # ahead of what we sent
        if source.packets - self.epoch_mark < 0x7000:  # young enough to tell its start (a fast start adds < 512)
            return behind <= ((last_out - self.epoch_first) & 0xFFFF)
        return True

    def _nack_allowed(self, out_seq: int) -> bool:
        """A hostile or broken point must not make us send more than it could have lost: a token
        bucket of retransmissions, and one answer per packet per ``NACK_HOLD`` (libwebrtc waits an RTT)."""
        now = time.monotonic()
        last = self._recent_nacks.get(out_seq)
        if last is not None and now - last < NACK_HOLD:
            return False
        self._nack_budget = min(float(NACK_BURST), self._nack_budget + (now - self._nack_refill) * NACK_RATE)
        self._nack_refill = now
        if self._nack_budget < 1:
            return False
        self._nack_budget -= 1
        if len(self._recent_nacks) >= NACK_TRACKED:
            self._recent_nacks = {s: t for s, t in self._recent_nacks.items() if now - t < NACK_HOLD}
        self._recent_nacks[out_seq] = now
        return True

    def retransmit(self, out_seq: int) -> bool:
        """Answer a NACK from the shared history of the current source: over RTX when negotiated,
        else the original packet again, byte for byte (the C loop never pads such a stream)."""
        source = self.source
        writer = self._writer
        if source is None or writer is None or not self.sent_in_epoch(out_seq):
            self.nacks_refused += 1
            return False
        seq = (out_seq - self.seq_off) & 0xFFFF
        entry = source.history.get(seq)
        if entry is None:
            return False
        if not self._nack_allowed(out_seq):
            self.nacks_refused += 1
            return False
        ts, marker, payload = entry
        out_ts = (ts + self.ts_off) & 0xFFFFFFFF
        if self.rtx_pt >= 0 and self._rtx_writer is not None:
            rtx_seq, self.rtx_seq = self.rtx_seq, (self.rtx_seq + 1) & 0xFFFF
            self._send(self._rtx_writer, (marker << 7) | self.rtx_pt, rtx_seq, out_ts, self.rtx_ssrc,
                       _osn(out_seq) + payload)
        else:
            self._send(writer, (marker << 7) | self.pt, out_seq, out_ts, self.ssrc, payload)
        self.retransmits += 1
        return True

    def rtp_timestamp_now(self, wallclock: float) -> int:
        source = self.source
        if source is None:
            return self.ts_off
        return (source.rtp_at(wallclock) + self.ts_off) & 0xFFFFFFFF
