"""OutboundStream: one kind of one subscriber; its numbering, its Python send path and its NACK answers.

The stream's wire state (SSRC, payload type, sequence/timestamp offsets, the last source numbers
sent, counters) lives in its ``target``: the ``struct fp_target`` the C loop sends with
(media.egress.fanout), or a ``PythonTarget`` with the same fields when the C loop cannot serve it.
Both loops read and write the same fields, so joining or leaving the C set copies nothing. Which
loop sends, when a new source's epoch starts and when video waits for a keyframe is decided by the
stream's group (media.egress.fanout_group); ``start_epoch`` does the renumbering it asks for.

One rule keeps SRTP safe: an SRTP index (SSRC, rollover counter, sequence number) never protects two
different plaintexts, which with AES-GCM would reuse an IV (and give away the authentication key).
So a retransmission either goes over RTX (RFC 4588: its own SSRC and sequence numbers, one index per
retransmission) or repeats the original packet byte for byte; only streams with RTX may be padded by
the C loop (``pad_ok``), and only indexes of the current source's epoch are ever answered.
"""

from __future__ import annotations

import operator
import os
import random
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pylibsrtp

from media.core.source import SourceStream
from media.egress import fanout
from media.egress.fanout import NO_PT
from media.egress.srtp_writer import SrtpWriter

if TYPE_CHECKING:
    from media.egress.srtp_gcm import GcmProtect

_osn = struct.Struct("!H").pack  # RTX payload header: the original sequence number


def _within(seq: int, first: int, last: int) -> bool:
    """``seq`` is one of first..last (16-bit sequence numbers)."""
    return ((seq - first) & 0xFFFF) <= ((last - first) & 0xFFFF)

NACK_HOLD = 0.05  # seconds before the same packet is retransmitted again (at least; the point's RTT when known)
NACK_RATE = 400.0  # retransmissions per second a stream may send (video at 2 Mbit/s is ~200 packets/s)
NACK_BURST = 200  # ... and at once
# ... and per packet it forwarded: a link that drops more than this share because it is full would
# only be filled further by repairs (the retransmissions, lost again, NACKed again), as a weak link's
# were at twice the media's own packets before this bound.
RTX_SHARE = 0.3
PAD_WINDOW = 32  # probe padding repeats the stream's last packets (over RTX), at most this far back
NACK_TRACKED = 512  # recently answered sequence numbers kept for NACK_HOLD


def _number(target: Any, ssrc: int) -> Any:
    """A new stream's numbering: its SSRC, random offsets (RFC 3550 5.1), no payload type yet."""
    target.ssrc = ssrc
    target.seq_off = random.randint(0, 0x7FFF)
    target.ts_off = random.getrandbits(32)
    target.pt = NO_PT
    return target


def _target_field(name: str, doc: str | None = None) -> property:
    """A read-only field of the stream's target (C ``struct fp_target`` or ``PythonTarget``): the
    loops write the target, so the stream never holds a copy."""
    return property(operator.attrgetter(f"target.{name}"), doc=doc)


class OutboundStream:
    __slots__ = (
        "kind",
        "track",
        "leaving",
        "pts",
        "clock_rate",
        "target",
        "native",
        "source",
        "_anchor",
        "keyframe_requests",
        "retransmits",
        "_writer",
        "_packet",
        "_rtx_writer",
        "_sendto",
        "_addr",
        "_fd",
        "_partner",
        "on_failure",
        "first_sent_at",
        "fast_started",
        "srtp",
        "rtx",
        "rtx_pt",
        "rtx_ssrc",
        "rtx_seq",
        "epoch_first",
        "epoch_mark",
        "_previous",
        "nacks_refused",
        "_nack_budget",
        "_nack_refill",
        "_recent_nacks",
        "_nack_packets",
        "rtt",
        "_pad_back",
        "probe_octets",
    )

    def __init__(
        self, kind: str, ssrc: int, pts: dict[str, int], clock_rate: int,
        rtx: dict[int, int] | None = None, rtx_ssrc: int = 0, track: str | None = None,
    ) -> None:
        self.kind = kind
        self.track = track or kind  # the router's track that feeds it (media.core.router.TRACKS)
        self.leaving: Any = None  # the group still feeding it until a rendition switch takes effect
        self.pts = pts  # codec key ("video/h264") -> negotiated payload type
        self.clock_rate = clock_rate
        self.target: Any = _number(fanout.PythonTarget(), ssrc)  # a C target from ``bind`` when it can have one
        self.native = False  # ``target`` is a struct fp_target: the C loop can send for this stream
        self.source: SourceStream | None = None  # the source of the current epoch (``start_epoch``)
        self._anchor: SourceStream | None = None  # the source of the last epoch sent: the offsets map its numbers
        self.keyframe_requests = 0
        self.retransmits = 0
        self._pad_back = 0  # how far behind the last packet the next padding packet is
        self.probe_octets = 0  # probe padding sent (``pad``)
        self._writer: SrtpWriter | None = None
        self._packet: Callable[..., memoryview | None] | None = None  # self._writer.packet
        self._rtx_writer: SrtpWriter | None = None
        self._sendto: Callable | None = None
        self._addr: tuple | None = None
        self._fd = -1  # the C target's duplicate of the socket's descriptor
        self._partner: OutboundStream | None = None  # the point's stream of the other kind, same socket
        self.on_failure: Callable[[], None] | None = None
        self.first_sent_at: float | None = None  # time.time() of the first packet (video: a keyframe)
        self.fast_started = False  # began with a replay of the current GOP (media.egress.gop_replay)
        self.srtp = ""  # what protects its RTP once bound: "aes-gcm" (media.egress.srtp_gcm) or "libsrtp"
        self.rtx = rtx or {}  # negotiated payload type -> its RTX payload type (RFC 4588)
        self.rtx_pt = -1  # RTX payload type of the current payload type, -1 when the point has none for it
        self.rtx_ssrc = rtx_ssrc
        self.rtx_seq = random.randint(0, 0xFFFF)
        self.epoch_first = 0  # our sequence number of the current source's first packet
        # The epoch before (source, seq_off, ts_off, pt, rtx_pt, first, last of our numbers): a
        # packet lost just before a switch is still repaired, else the point's jitter buffer would
        # wait for it until it overflows (seconds of frozen picture).
        self._previous: tuple | None = None
        self.epoch_mark = 0  # the source's packet count then
        self.nacks_refused = 0  # NACKs not answered: before the epoch, not yet sent, or over budget
        self._nack_budget = float(NACK_BURST)
        self._nack_refill = 0.0
        self._recent_nacks: dict[int, float] = {}  # our seq -> monotonic time it was last answered
        self._nack_packets = 0  # ``packets`` when the budget was last refilled
        self.rtt = 0.0  # seconds: the point's round trip from its receiver reports (0: not known yet)

    # The target's fields, read where both loops write them.
    ssrc = _target_field("ssrc")
    seq_off = _target_field("seq_off")
    ts_off = _target_field("ts_off")
    last_seq = _target_field("last_seq", "The source sequence number last sent (by either loop).")
    last_ts = _target_field("last_ts")
    packets = _target_field("packets")
    octets = _target_field("octets")
    sends = _target_field("sends", "Send calls: one per packet on the Python path; in the C loop one per batch and "
                         "point (a sendmmsg of its GSO runs), or one per run (``fanout.runs_together(False)``).")
    runs = _target_field("runs", "Datagram groups handed to the kernel: a GSO run counts one, a lone datagram one.")
    drops = _target_field("drops")

    @property
    def pt(self) -> int:
        """The payload type sent for the current source, -1 when its codec was not negotiated."""
        pt = self.target.pt
        return -1 if pt == NO_PT else pt

    @property
    def fast(self) -> bool:
        """Currently forwarded by the C loop (in a fan-out set)."""
        return self.target.set_id != 0

    @property
    def paired(self) -> bool:
        """Its packets leave in the same send calls as the point's other stream (``pair_with``)."""
        return self._partner is not None

    def bind(
        self, session: pylibsrtp.Session, sendto: Callable, addr: tuple, fd: int = -1, gcm: GcmProtect | None = None
    ) -> None:
        """Attach the subscriber's SRTP session and UDP path (once DTLS is connected).

        With ``fd`` (the ICE socket's descriptor) the stream gets a C target, so the C loop can send
        for it; the target keeps a duplicate of the descriptor, so a socket closed under it is never
        a reused number. With ``gcm`` (media.egress.srtp_gcm) every RTP packet of the stream is
        protected by that context. No packet has been sent yet: the C target starts a fresh numbering.
        """
        self._writer = SrtpWriter(session, gcm)
        self._packet = self._writer.packet
        # RTX is another SSRC: libsrtp's session keeps its own rollover counter for it.
        self._rtx_writer = SrtpWriter(session) if self.rtx and self.rtx_ssrc else None
        self.srtp = "libsrtp" if gcm is None else "aes-gcm"
        self._sendto = sendto
        self._addr = addr
        if fd >= 0 and fanout.enabled():
            dup = os.dup(fd)
            target = fanout.new_target(self._writer.ctx, dup, addr[0], addr[1], gcm.address if gcm is not None else 0)
            if target is None:
                os.close(dup)
            else:
                self.target, self.native, self._fd = _number(target, self.target.ssrc), True, dup

    def path_pinned(self) -> None:
        """The socket is now connected to the point (media.transport.pinned_path): the C loop sends without
        an address, on the route the socket keeps. The Python path's sends still name it, which a
        connected UDP socket accepts."""
        if self.native:
            self.target.addrlen = 0

    def pair_with(self, other: OutboundStream) -> None:
        """Mark ``other`` as the same point's stream of the other kind on the same socket and path:
        the C loop may then send both streams' packets of one wake-up in the same calls
        (media.egress.fanout.FastFanout.flush_with). Each holds the other, so neither target is freed under the other."""
        if not (self.native and other.native) or self._addr != other._addr:
            return
        self._partner, other._partner = other, self
        self.target.partner, other.target.partner = other.target, self.target

    def _unpair(self) -> None:
        other = self._partner
        if other is None:
            return
        self._partner = other._partner = None
        self.target.partner = other.target.partner = fanout.ffi.NULL

    def release(self) -> None:
        """Give back the duplicated descriptor (the stream has left its group)."""
        self._unpair()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self.target.fd = -1

    def accepts(self, source: SourceStream) -> bool:
        return source.codec in self.pts

    def start_epoch(self, source: SourceStream, seq: int, ts: int) -> None:
        """Send ``source`` from its packet ``seq``/``ts`` on, continuing our numbering across the
        change of source: the next sequence number, the timestamp advanced by the wall-clock gap.
        A source in a codec the point did not negotiate is an epoch of silence: the numbering then
        continues from the last epoch that was sent."""
        t = self.target
        self.source = source
        pt = self.pts.get(source.codec, -1)
        if pt < 0:
            t.pt = NO_PT
            self.rtx_pt = -1
            return
        previous = self._anchor
        if previous is not None and t.pt != NO_PT:
            self._previous = (previous, t.seq_off, t.ts_off, t.pt, self.rtx_pt, self.epoch_first,
                              (t.last_seq + t.seq_off) & 0xFFFF)
        if previous is not None:
            out_seq = (t.last_seq + t.seq_off + 1) & 0xFFFF
            gap = max(1, int((source.last_arrival - previous.last_arrival) * self.clock_rate))
            out_ts = (t.last_ts + t.ts_off + gap) & 0xFFFFFFFF
            t.seq_off = (out_seq - seq) & 0xFFFF
            t.ts_off = (out_ts - ts) & 0xFFFFFFFF
        self._anchor = source
        t.pt = pt
        self.rtx_pt = self.rtx.get(pt, -1) if self._rtx_writer is not None else -1
        # Padding only where retransmissions leave over RTX: a padded packet could not be repeated byte for byte.
        t.pad_ok = 1 if self.rtx_pt >= 0 else 0
        self.epoch_first = (seq + t.seq_off) & 0xFFFF
        self.epoch_mark = source.packets - 1  # this packet is counted already (Router.on_rtp)
        self._recent_nacks.clear()
        if self.first_sent_at is None:
            self.first_sent_at = time.time()

    def send(self, seq: int, ts: int, marker: int, payload: bytes) -> None:
        """One packet of the current epoch on the Python path: rewrite, protect in place, send."""
        t = self.target
        t.last_seq = seq
        t.last_ts = ts
        data = self._packet(  # type: ignore[misc]
            (marker << 7) | t.pt, (seq + t.seq_off) & 0xFFFF, (ts + t.ts_off) & 0xFFFFFFFF, t.ssrc, payload
        )
        if data is None:  # over the MTU, or the protect failed
            t.drops += 1
            return
        try:
            self._sendto(data, self._addr)  # type: ignore[misc]
        except (BlockingIOError, ConnectionRefusedError):
            # socket buffer full: drop rather than queue (the subscriber NACKs); or an ICMP
            # port-unreachable reported on a pinned socket (media.transport.pinned_path): RTCP and consent judge
            t.drops += 1
            return
        except OSError:
            t.drops += 1
            if self.on_failure is not None:
                self.on_failure()
            return
        t.packets += 1
        t.octets += len(payload)
        t.sends += 1
        t.runs += 1

    def _resend(self, writer: SrtpWriter, b1: int, seq: int, ts: int, ssrc: int, payload: bytes) -> None:
        """A retransmission (counted in ``retransmits``, not in the forwarded packets)."""
        data = writer.packet(b1, seq, ts, ssrc, payload)
        if data is None:
            self.target.drops += 1
            return
        try:
            self._sendto(data, self._addr)  # type: ignore[misc]
        except OSError:
            self.target.drops += 1

    def sent_in_epoch(self, out_seq: int) -> bool:
        """Whether ``out_seq`` is one of ours already sent from the current source: only those may be
        answered (an older one mapped through today's offset would be other media under a used index)."""
        source = self.source
        t = self.target
        if source is None or t.pt == NO_PT:  # nothing sent yet, or an epoch of silence
            return False
        last_out = (t.last_seq + t.seq_off) & 0xFFFF
        behind = (last_out - out_seq) & 0xFFFF
        if behind >= 0x8000:
            return False  # ahead of what we sent
        if source.packets - self.epoch_mark < 0x7000:  # young enough to tell its start (a fast start adds < 512)
            return behind <= ((last_out - self.epoch_first) & 0xFFFF)
        return True

    def _nack_allowed(self, out_seq: int) -> bool:
        """A hostile, broken or congested point must not make us send more than it could have lost:
        one answer per packet per round trip (as libwebrtc and mediasoup: a NACK repeated sooner
        was sent before our answer could arrive), and a token bucket filled by time (``NACK_RATE``)
        and by the packets forwarded (``RTX_SHARE``), whichever gives less."""
        now = time.monotonic()
        last = self._recent_nacks.get(out_seq)
        hold = max(NACK_HOLD, self.rtt)
        if last is not None and now - last < hold:
            return False
        packets = self.packets
        refill = min((now - self._nack_refill) * NACK_RATE, (packets - self._nack_packets) * RTX_SHARE)
        self._nack_budget = min(float(NACK_BURST), self._nack_budget + max(refill, 0.0))
        self._nack_refill, self._nack_packets = now, packets
        if self._nack_budget < 1:
            return False
        self._nack_budget -= 1
        if len(self._recent_nacks) >= NACK_TRACKED:
            self._recent_nacks = {s: t for s, t in self._recent_nacks.items() if now - t < hold}
        self._recent_nacks[out_seq] = now
        return True

    def retransmit(self, out_seq: int) -> bool:
        """Answer a NACK from the shared history of the current source (or of the one before, for a
        packet lost just before a switch): over RTX when negotiated, else the original packet
        again, byte for byte (the C loop never pads such a stream)."""
        writer = self._writer
        t = self.target
        previous = self._previous
        if self.sent_in_epoch(out_seq):
            source, seq_off, ts_off, pt, rtx_pt = self.source, t.seq_off, t.ts_off, t.pt, self.rtx_pt
        elif previous is not None and _within(out_seq, previous[5], previous[6]):
            source, seq_off, ts_off, pt, rtx_pt = previous[:5]
        else:
            source = None
        if source is None or writer is None:
            self.nacks_refused += 1
            return False
        entry = source.history.get((out_seq - seq_off) & 0xFFFF)
        if entry is None:
            return False
        if not self._nack_allowed(out_seq):
            self.nacks_refused += 1
            return False
        ts, marker, payload = entry
        out_ts = (ts + ts_off) & 0xFFFFFFFF
        if rtx_pt >= 0 and self._rtx_writer is not None:
            rtx_seq, self.rtx_seq = self.rtx_seq, (self.rtx_seq + 1) & 0xFFFF
            self._resend(self._rtx_writer, (marker << 7) | rtx_pt, rtx_seq, out_ts, self.rtx_ssrc,
                         _osn(out_seq) + payload)
        else:
            self._resend(writer, (marker << 7) | pt, out_seq, out_ts, t.ssrc, payload)
        self.retransmits += 1
        return True

    def pad(self, budget: int) -> int:
        """Probe padding: about ``budget`` bytes of the stream's last packets again, over RTX (the
        point drops them as duplicates), to learn whether its link carries more without switching
        to more. Each one takes the next RTX sequence number, so no SRTP index is used twice.
        Returns the bytes sent: 0 where the point has no RTX or nothing of this epoch was sent."""
        writer, source, t = self._rtx_writer, self.source, self.target
        if writer is None or self.rtx_pt < 0 or self._writer is None or source is None:
            return 0
        last = t.last_seq
        sent = 0
        for _ in range(PAD_WINDOW):
            if sent >= budget:
                break
            self._pad_back = (self._pad_back + 1) % PAD_WINDOW
            out_seq = (last - self._pad_back + t.seq_off) & 0xFFFF
            entry = source.history.get((last - self._pad_back) & 0xFFFF)
            if entry is None or not self.sent_in_epoch(out_seq):
                continue
            ts, marker, payload = entry
            rtx_seq, self.rtx_seq = self.rtx_seq, (self.rtx_seq + 1) & 0xFFFF
            self._resend(writer, (marker << 7) | self.rtx_pt, rtx_seq, (ts + t.ts_off) & 0xFFFFFFFF, self.rtx_ssrc,
                         _osn(out_seq) + payload)
            sent += len(payload) + 14  # RTP header and the original sequence number
        self.probe_octets += sent
        return sent

    def rtp_timestamp_now(self, wallclock: float) -> int:
        source = self.source
        if source is None:
            return self.target.ts_off
        return (source.rtp_at(wallclock) + self.target.ts_off) & 0xFFFFFFFF
