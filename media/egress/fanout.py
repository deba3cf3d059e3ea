"""The C fan-out loop's Python face (``media.native._fastpath``): send targets and the set it serves.

A subscriber stream's wire state (SSRC, payload type, offsets, the last source numbers sent,
counters) lives in one ``struct fp_target``, which the C loop reads and writes and the stream's
Python code reads and writes too (media.egress.outbound): one object, two faces, nothing copied
between them. A stream the C loop cannot serve (not built, or relayed through TURN) has a
``PythonTarget`` with the same fields instead.

``FastFanout`` is the set of streams of one kind that the C loop forwards. A batched set queues the
packets of one burst (``queue``) and flushes them together: per subscriber, one UDP GSO send per run
of equal-sized packets instead of one ``sendto`` each (the kernel's per-datagram send path was over
half of the forwarding cost). ``forward`` sends one packet at once (unbatched routers). Which
streams are in the set is the group's decision (media.egress.fanout_group).
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable
from typing import Any, Protocol

from media.aiortc_compat import srtp_ffi, srtp_lib

try:
    from media.native._fastpath import ffi, lib
except ImportError:  # not compiled (no C compiler): every stream sends on its Python path
    ffi = lib = None

from media.core.source import SourceStream

log = logging.getLogger(__name__)
AVAILABLE = lib is not None
_PROTECT = int(srtp_ffi.cast("uintptr_t", srtp_ffi.addressof(srtp_lib, "srtp_protect"))) if AVAILABLE else 0
_disabled = os.environ.get("DIEMCAU_FASTPATH", "1") == "0"
NO_PT = 0xFF  # a target's ``pt`` while the current source's codec was not negotiated (RTP's is 7 bits)


def enabled() -> bool:
    return AVAILABLE and not _disabled


class PythonTarget:
    """``struct fp_target``'s fields that Python reads and writes, for a stream the C loop never serves."""

    __slots__ = ("ssrc", "pt", "seq_off", "ts_off", "pad_ok", "last_seq", "last_ts",
                 "packets", "octets", "drops", "sends", "runs", "set_id")

    def __init__(self) -> None:
        self.ssrc = self.seq_off = self.ts_off = self.pad_ok = self.last_seq = self.last_ts = 0
        self.pt = NO_PT
        self.packets = self.octets = self.drops = self.sends = self.runs = self.set_id = 0


def new_target(ctx: object, fd: int, host: str, port: int, protect: int = 0):  # type: ignore[no-untyped-def]
    """A C target for one stream, or None when the fast path is off or the address is unusable.

    ``protect`` is the address of the stream's own protect function (media.egress.srtp_gcm), whose context
    is ``ctx``; 0 means libsrtp's ``srtp_protect`` with the session ``ctx``.
    """
    if not enabled():
        return None
    target = ffi.new("struct fp_target *")
    target.ctx = ffi.cast("void *", int(srtp_ffi.cast("uintptr_t", ctx)) if protect == 0 else ctx)
    target.protect = protect
    target.fd = fd
    if lib.fp_set_addr(target, host.encode(), port) != 0:
        return None
    return target


def _packets(queued: list[tuple[int, int, int, bytes]]):  # type: ignore[no-untyped-def]
    """An ``fp_pkt`` array for (seq, ts, marker, payload) tuples, and the buffers it points into
    (keep them alive until the C call has returned)."""
    pkts = ffi.new("struct fp_pkt[]", len(queued))
    keep = []
    for i, (seq, ts, marker, payload) in enumerate(queued):
        p = pkts[i]
        buf = ffi.from_buffer(payload)
        keep.append(buf)
        p.payload, p.plen, p.seq, p.ts, p.marker = buf, len(payload), seq, ts, marker
    return pkts, keep


def one_target(target: Any):  # type: ignore[no-untyped-def]
    """An array of one target, for ``send_to_one``."""
    return ffi.new("struct fp_target *[1]", [target])


def send_to_one(array: Any, packets: list[tuple[int, int, int, bytes]]) -> bool:
    """Packets for the one target in ``array`` (``one_target``), batched as the fan-out's are: fast
    start's replay of a GOP leaves in a few GSO sends, not one send per packet. True when a send
    failed for good (the stream's path is gone)."""
    pkts, keep = _packets(packets)
    if lib.fp_forward_batch(_PROTECT, array, 1, pkts, len(packets)):
        array[0].failed = 0
        return True
    return False


BATCH = 64  # fp_forward_batch's limit (FP_BATCH)
SEND_MODES = {"gso": 2, "sendmmsg": 1, "sendto": 0}


def send_mode(mode: str | None = None) -> str:
    """How queued batches leave (``gso``; ``sendmmsg`` once a kernel refuses GSO); set for comparisons."""
    if lib is None:
        return "sendto"
    value = lib.fp_send_mode(SEND_MODES[mode] if mode is not None else -1)
    return next(name for name, number in SEND_MODES.items() if number == value)


def runs_together(flag: bool | None = None) -> bool:
    """Whether a batch's GSO runs to one point leave in one sendmmsg (default) or a call per run."""
    if lib is None:
        return False
    return bool(lib.fp_send_runs_together(-1 if flag is None else int(flag)))


def pad_max(limit: int | None = None) -> int:
    """Bytes of RTP padding a batch's packets may get so that nearly equal sizes make one GSO run."""
    if lib is None:
        return 0
    return int(lib.fp_pad_max(-1 if limit is None else limit))


_set_ids = itertools.count(1)


class Member(Protocol):
    """A stream in a ``FastFanout`` (media.egress.outbound.OutboundStream)."""

    target: Any  # its struct fp_target
    on_failure: Callable[[], None] | None


class FastFanout:
    """The streams of one kind the C loop forwards; they all follow ``source``."""

    __slots__ = ("source", "members", "set_id", "_array", "_count", "_queued")

    def __init__(self) -> None:
        self.set_id = next(_set_ids)  # its members' fp_target.set_id
        self.source: SourceStream | None = None
        self.members: list[Member] = []
        self._array = None
        self._count = 0
        self._queued: list[tuple[int, int, int, bytes]] = []

    def add(self, out: Member) -> None:
        self.flush()  # queued packets are for the members they were queued for
        t = out.target
        t.failed = 0
        t.set_id = self.set_id
        self.members.append(out)
        self._rebuild()

    def remove(self, out: Member) -> bool:
        self.flush()
        try:
            self.members.remove(out)
        except ValueError:
            return False
        out.target.set_id = 0
        self._rebuild()
        return True

    def demote_all(self) -> list[Member]:
        """Hand every stream back (a new source is about to be forwarded)."""
        self.flush()
        members, self.members = self.members, []
        for out in members:
            out.target.set_id = 0
        self._rebuild()
        self.source = None
        return members

    def _rebuild(self) -> None:
        self._count = len(self.members)
        self._array = ffi.new("struct fp_target *[]", [m.target for m in self.members]) if self.members else None

    def forward(self, seq: int, ts: int, marker: int, payload: bytes) -> None:
        if lib.fp_forward(_PROTECT, self._array, self._count, seq, ts, marker, payload, len(payload)):
            self._failed()

    def queue(self, seq: int, ts: int, marker: int, payload: bytes) -> None:
        """Hold a packet for ``flush`` (the caller flushes once the current wake-up's packets are in)."""
        queued = self._queued
        queued.append((seq, ts, marker, payload))
        if len(queued) >= BATCH:
            self.flush()

    def flush(self) -> None:
        queued = self._queued
        if not queued:
            return
        self._queued = []
        if not self.members:
            return
        pkts, keep = _packets(queued)
        if lib.fp_forward_batch(_PROTECT, self._array, self._count, pkts, len(queued)):
            self._failed()

    def flush_with(self, other: FastFanout) -> None:
        """Flush this set and ``other`` in one pass over the points (``fp_forward_pair``): a point
        whose stream of the other kind is in ``other`` gets both batches in the same send calls,
        an audio packet as the shorter last datagram of a video GSO run."""
        queued, other_queued = self._queued, other._queued
        if not (queued and other_queued and self.members and other.members):
            other.flush()
            self.flush()
            return
        self._queued, other._queued = [], []
        pkts, keep = _packets(queued)
        other_pkts, other_keep = _packets(other_queued)
        if lib.fp_forward_pair(_PROTECT, self._array, self._count, pkts, len(queued),
                               other._array, other._count, other_pkts, len(other_queued), other.set_id):
            self._failed()
            other._failed()

    def _failed(self) -> None:
        for out in list(self.members):
            t = out.target
            if t.failed:
                t.failed = 0
                log.info("send to subscriber failed (errno %d)", t.last_errno)
                if out.on_failure is not None:
                    out.on_failure()
