"""Fast start: a subscriber that joins mid-GOP starts from the GOP's keyframe instead of waiting.

Without it a new video subscriber waits for the next keyframe: it asks the publisher for one, and
the router merges those requests to one per ``keyframe_interval`` (so a storm of joins does not
make the speaker send a keyframe per join), so a join waited up to that interval (p95 1.0 s in the
250-join benchmark). When the current GOP began less than ``fast_start`` seconds ago and every
packet since its keyframe is still in the source's history, the stream instead replays the GOP
from its first packet, paced at ``SPEED`` times real time, and then continues live: no keyframe
request, and only the joiner receives the extra packets (a keyframe request would have sent a
keyframe to every subscriber, weak links included). The picture starts up to ``fast_start``
seconds behind live and catches up within ``fast_start / (SPEED - 1)`` seconds.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from media.history import HISTORY_SIZE

if TYPE_CHECKING:
    from media.outbound import OutboundStream
    from media.source import SourceStream

SPEED = 2.0  # replay pace, times real time
TICK = 0.01  # seconds between paced sends
MAX_SECONDS = 10.0  # a catch-up that has not finished by then is abandoned
MAX_BACKTRACK = 64  # packets before the flagged keyframe packet with the same timestamp (SPS, SEI...)


class CatchUp:
    """Replays one outbound video stream from the current GOP's start up to the live edge."""

    __slots__ = ("out", "source", "next_seq", "start_ts", "sent", "t0", "handle", "speed")

    def __init__(self, out: "OutboundStream", source: "SourceStream", first_seq: int, start_ts: int,
                 speed: float = SPEED) -> None:
        self.out = out
        self.source = source
        self.next_seq = first_seq
        self.start_ts = start_ts
        self.sent = 0
        self.t0 = 0.0
        self.handle: asyncio.TimerHandle | None = None
        self.speed = speed

    @classmethod
    def plan(cls, out: "OutboundStream", source: "SourceStream", max_age: float) -> "CatchUp | None":
        """A catch-up for ``out``, or None when the GOP is too old or not wholly in the history."""
        if source.gop_ts < 0 or not out.accepts(source) or time.time() - source.gop_at > max_age:
            return None
        history = source.history
        first = source.gop_seq
        for _ in range(MAX_BACKTRACK):  # the frame may start before its first keyframe-flagged packet
            entry = history.get((first - 1) & 0xFFFF)
            if entry is None or entry[0] != source.gop_ts:
                break
            first = (first - 1) & 0xFFFF
        count = ((source.last_seq - first) & 0xFFFF) + 1
        if count > HISTORY_SIZE // 2:
            return None
        for i in range(count):
            if history.get((first + i) & 0xFFFF) is None:
                return None  # a packet the publisher lost: the subscriber could not decode past it
        return cls(out, source, first, source.gop_ts)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.t0 = time.monotonic()
        self.out.catch_up = self
        self.out.fast_started = True
        self._tick(loop)

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        if self.out.catch_up is self:
            self.out.catch_up = None

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self.handle = None
        out, source = self.out, self.source
        router = out.router
        elapsed = time.monotonic() - self.t0
        if out.catch_up is not self or router is None or router.active[out.kind] is not source or elapsed > MAX_SECONDS:
            self.cancel()  # left the router, the source changed, or far too slow: back to normal gating
            return
        allowed = (self.start_ts + int(elapsed * self.speed * source.clock_rate)) & 0xFFFFFFFF
        history = source.history
        out.catch_up = None  # forward() holds live packets back while a catch-up is set
        while self.next_seq != (source.last_seq + 1) & 0xFFFF:
            entry = history.get(self.next_seq)
            if entry is None:
                return  # overwritten or lost: continue live from here (the subscriber NACKs or asks for a keyframe)
            ts, marker, payload = entry
            if self.sent and 0 < ((ts - allowed) & 0xFFFFFFFF) < 0x80000000:
                out.catch_up = self  # not due yet
                self.handle = loop.call_later(TICK, self._tick, loop)
                return
            out.forward(source, self.next_seq, ts, marker, payload, self.sent == 0)
            self.sent += 1
            self.next_seq = (self.next_seq + 1) & 0xFFFF
        # caught up with the live edge: the next live packet is forwarded as usual
