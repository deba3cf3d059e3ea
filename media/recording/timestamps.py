"""Timestamps of received frames: RTP clock unwrapping, and decode times for reordered H.264.

An RTP timestamp is the frame's *presentation* time (RFC 6184 §5.1), and frames arrive in *decode*
order. Without B-frames the two orders agree; with them (x264 Main/High, as OBS can send) a picture
is sent before the B-frames shown ahead of it, so its timestamp is later than theirs.

* aiortc's ``TimestampMapper`` takes every backwards step for a 32-bit wrap and adds 2**32, so after
  the first B-frame its timestamps are off by multiples of 2**32. :class:`RtpUnwrapper` undoes that:
  it only trusts the timestamp modulo 2**32 and steps by the nearest signed difference.
* :class:`DecodeClock` gives each picture a decode timestamp the way FFmpeg does for a stream that
  carries only pts (libavformat's ``pts_buffer``): with a reorder depth of ``d`` pictures, the dts of
  the n-th picture is the (n - d)-th smallest pts so far, which is never after its own pts and
  always after the previous dts. The first ``d`` pictures are decoded ``d`` frame intervals early.
"""

from __future__ import annotations

import collections
import heapq

WRAP = 1 << 32


class RtpUnwrapper:
    """A monotonic-where-it-should-be 64-bit clock from 32-bit RTP timestamps (any order)."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: int | None = None

    def __call__(self, ts: int) -> int:
        if self.last is None:
            self.last = ts
            return ts
        step = ((ts - self.last + WRAP // 2) % WRAP) - WRAP // 2
        self.last += step
        return self.last


class DecodeClock:
    """Decode timestamps for one run of pictures starting at a keyframe whose pts is at least
    ``depth * interval`` (the caller leaves that much room before it)."""

    def __init__(self, depth: int, interval: int) -> None:
        self.depth = depth
        self._pending = [i * interval for i in range(depth)]  # sorted, so already a heap
        self._issued: collections.deque[int] = collections.deque(maxlen=16)

    def next(self, pts: int) -> int | None:
        """The dts of the next picture in decode order, or ``None`` if none fits: the stream
        reorders deeper than ``depth`` (or repeats a timestamp)."""
        dts = heapq.heappushpop(self._pending, pts)
        if self._issued and dts <= self._issued[-1]:
            return None
        self._issued.append(dts)
        return dts

    def shortfall(self, pts: int) -> int:
        """How many more pictures of reorder depth would have fitted ``pts`` in (at least 1)."""
        return max(1, sum(1 for d in self._issued if d >= pts))
