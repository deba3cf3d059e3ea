"""Timestamps of received frames: RTP clock unwrapping, and decode times for reordered H.264.

An RTP timestamp is the frame's *presentation* time (RFC 6184 §5.1), and frames arrive in *decode*
order. Without B-frames the two orders agree; with them (x264 Main/High, as OBS can send) a picture
is sent before the B-frames shown ahead of it, so its timestamp is later than theirs.

* The recorder takes the publisher's raw 32-bit RTP timestamps, which start anywhere and wrap (after
  13 hours of 90 kHz video from 0, at once from a random start). :class:`RtpUnwrapper` counts ticks
  from an origin by the nearest signed step, so a B-frame's step back is a step back, not a wrap.
* :class:`DecodeClock` gives each picture a decode timestamp the way FFmpeg does for a stream that
  carries only pts (libavformat's ``pts_buffer``): with a reorder depth of ``d`` pictures, the dts of
  the n-th picture is the (n - d)-th smallest pts so far, which is never after its own pts and
  always after the previous dts. The first ``d`` pictures are decoded ``d`` frame intervals early.
"""

from __future__ import annotations

import collections
import heapq

WRAP = 1 << 32


def signed32(value: int) -> int:
    """``value`` modulo 2**32 as the nearest signed step: the difference of two RTP timestamps."""
    return ((value + WRAP // 2) % WRAP) - WRAP // 2


class RtpUnwrapper:
    """Ticks since the RTP timestamp ``origin``, from 32-bit timestamps in any order (negative before)."""

    __slots__ = ("raw", "ticks")

    def __init__(self, origin: int) -> None:
        self.raw = origin  # the latest timestamp taken, as sent
        self.ticks = 0  # ... and its ticks since the origin

    def __call__(self, ts: int) -> int:
        self.ticks += signed32(ts - self.raw)
        self.raw = ts
        return self.ticks


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
