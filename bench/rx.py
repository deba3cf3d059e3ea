"""The load generator's receive loop in C (``bench._rxfast``, built by ``bench/rx_build.py``).

``CReceiver.poll`` drains every ready subscriber socket in one call and returns the few things that
need Python as events; ``CStream`` is a subscriber stream whose counters live in C, with the same
attributes the Python loop's ``Stream`` has (so receiver reports and results read either).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Iterator
from typing import Any

try:
    from bench._rxfast import ffi, lib
except ImportError:  # no C compiler: the load generator uses its Python loop
    ffi = lib = None

AVAILABLE = lib is not None
MAX_FD = 65536
MAX_EVENTS = 8192
DATA_BYTES = 8 << 20
NOT_RTP, UNKNOWN_SSRC, KEYFRAME_CHECK, GAP = 0, 1, 2, 3


class CStream:
    """One received RTP stream; the hot counters are fields of a C ``struct rx_stream``."""

    __slots__ = ("c", "kind", "lsr", "lsr_time", "nacks", "prior_expected", "prior_unique", "bm")

    def __init__(self, ident: int, ssrc: int, kind: str, clock: int, window: tuple[float, float], hist: Any) -> None:
        c = ffi.new("struct rx_stream *")
        c.id, c.ssrc, c.video, c.keyframe = ident, ssrc, int(kind == "video"), int(kind != "video")
        c.kf_ts = c.last_ts = -1
        c.clock = float(clock)
        c.w0, c.w1 = window
        c.hist = hist
        self.c = c
        self.kind = kind
        self.lsr = 0
        self.lsr_time = 0.0
        self.nacks = 0
        self.prior_expected = 0
        self.prior_unique = 0
        self.bm = memoryview(ffi.buffer(c.bm)).cast("B")  # seen sequence numbers, read when NACKing

    # What the SR handling, receiver reports and results use, by the Python loop's names.
    ssrc = property(lambda self: self.c.ssrc)
    clock = property(lambda self: self.c.clock)
    started = property(lambda self: bool(self.c.started))
    ext_hi = property(lambda self: self.c.ext_hi)
    base_ext = property(lambda self: self.c.base_ext)
    unique = property(lambda self: self.c.unique)
    keyframe = property(lambda self: bool(self.c.keyframe), lambda self, v: setattr(self.c, "keyframe", int(v)))
    ref_rtp = property(lambda self: self.c.ref_rtp, lambda self, v: setattr(self.c, "ref_rtp", v))
    last_ts = property(lambda self: self.c.last_ts, lambda self, v: setattr(self.c, "last_ts", v))
    w0 = property(lambda self: self.c.w0, lambda self, v: setattr(self.c, "w0", v))
    w1 = property(lambda self: self.c.w1, lambda self, v: setattr(self.c, "w1", v))

    @property
    def base(self) -> float | None:
        return self.c.base if self.c.has_base else None

    @base.setter
    def base(self, value: float | None) -> None:
        self.c.has_base = int(value is not None)
        self.c.base = value or 0.0

    def result(self) -> dict:
        c = self.c
        return {
            "win_unique": c.win_unique,
            "holes": (c.win_max - c.win_min + 1) - c.win_unique if c.has_win else 0,
            "rx_win": c.rx_win,
            "rx_win_bytes": c.rx_win_bytes,
            "rx": c.rx,
            "unique": c.unique,
            "dups": c.dups,
            "repaired": c.repaired,
            "nacks": self.nacks,
            "unmapped": c.unmapped,
        }


class CReceiver:
    """Every subscriber socket of one load generator process, drained from C."""

    def __init__(self, hist_bin: float, hist_bins: int) -> None:
        self.socks = ffi.new("struct rx_sock *[]", MAX_FD)
        self.g = ffi.new("struct rx_state *")
        self.g.a0 = self.g.a1 = float("inf")
        self.g.hist_bin, self.g.hist_bins = hist_bin, hist_bins
        self.out = ffi.new("struct rx_out *")
        self._events = ffi.new("struct rx_event[]", MAX_EVENTS)
        self._data = ffi.new("unsigned char[]", DATA_BYTES)
        self.out.ev, self.out.max, self.out.data, self.out.size = self._events, MAX_EVENTS, self._data, DATA_BYTES
        self._keep: dict[int, Any] = {}  # fd -> its struct rx_sock (owned here)
        self.hist_bins = hist_bins

    def new_hist(self) -> Any:
        return ffi.new("uint64_t[]", self.hist_bins + 1)

    @staticmethod
    def hist_counts(hist: Any, n: int) -> list[int]:
        return list(ffi.unpack(hist, n))

    def add_socket(self, fd: int, gro: bool = False) -> Any:
        """``gro``: the socket has UDP_GRO on, so one read may hold a GSO send's datagrams."""
        s = ffi.new("struct rx_sock *")
        s.id, s.fd, s.gro = fd, fd, int(gro)
        self._keep[fd] = s
        self.socks[fd] = s
        return s

    def remove_socket(self, fd: int) -> None:
        if self._keep.pop(fd, None) is not None:
            self.socks[fd] = ffi.NULL

    @staticmethod
    def add_stream(sock: Any, stream: CStream) -> bool:
        if sock.n >= 4:
            return False
        sock.streams[sock.n] = stream.c
        sock.n += 1
        return True

    def packet(self, sock: Any, data: bytes, arrival: float) -> None:
        """One packet that did not come through ``poll`` (queued before the socket was taken over)."""
        lib.rx_packet(sock, self.g, data, len(data), arrival, self.out)

    def poll(self, epfd: int) -> None:
        lib.rx_poll(epfd, self.socks, MAX_FD, self.g, self.out)

    def events(self) -> Iterator[tuple[int, int, int, Any, float, int, int, Any]]:
        """(type, sock id, stream id, data, arrival, gap start, gap length, addr) of what ``poll``
        queued, including events queued while these are handled; then the queue is emptied."""
        out, ev, data = self.out, self._events, self._data
        i = 0
        while i < out.n:
            e = ev[i]
            i += 1
            payload = bytes(ffi.buffer(data + e.off, e.len)) if e.len else b""
            addr = None
            if e.type == NOT_RTP:
                raw = bytes(ffi.buffer(e.addr, 8))
                addr = (socket.inet_ntoa(raw[4:8]), struct.unpack_from("!H", raw, 2)[0])
            yield e.type, e.sock, e.stream, payload, e.arrival, e.hi, e.gap, addr
        out.n = 0
        out.used = 0

    def drain_all(self, epfd: int, handle: Callable[..., None], limit: int = 64) -> None:
        """Poll until nothing was left behind for lack of room (bounded: ``limit`` rounds)."""
        for _ in range(limit):
            self.out.full = 0
            self.poll(epfd)
            for event in self.events():
                handle(*event)
            if not self.out.full:
                return

    @property
    def negative_delays(self) -> int:
        return self.g.negative_delays

    def set_arrival_window(self, a0: float, a1: float) -> None:
        self.g.a0, self.g.a1 = a0, a1
