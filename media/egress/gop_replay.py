"""Fast start: a subscriber that joins mid-GOP starts from the GOP's keyframe instead of waiting.

Without it a new video subscriber waits for the next keyframe: it asks the publisher for one, and
the router merges those requests to one per ``keyframe_interval`` (so a storm of joins does not
make the speaker send a keyframe per join), so a join waited up to that interval (p95 1.0 s in the
250-join benchmark). When the current GOP began less than ``fast_start`` seconds ago and every
packet since its keyframe is still in the source's history, the stream instead replays the GOP:
the keyframe's whole frame at once (as a live keyframe would arrive), then ``PER_PACKET`` history
packets for every live packet of the source, so it catches up at about twice real time without a
timer of its own, and then continues live. No keyframe request, and only the joiner receives the
extra packets (a keyframe request would have sent a keyframe to every subscriber, weak links
included). Replayed packets go through the C loop when the stream has a C target, batched like the
fan-out's: on a batched group a live packet only adds to what the joiner is owed, and the group's
flush sends it, so a wake-up's live packets cost one C call per joiner, not one each (in a join
storm the per-packet calls were a tenth of a worker's CPU). The group (media.egress.fanout_group)
starts a replay, feeds it the live packets, flushes it and drops it once ``done``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from media.core.source import SourceStream
from media.egress import fanout
from media.egress.outbound import OutboundStream

PER_PACKET = 2  # history packets sent per live packet: catches up at ~2x real time
MAX_SECONDS = 10.0  # a catch-up that has not finished by then is abandoned (normal gating resumes)
MAX_BACKTRACK = 64  # packets before the flagged keyframe packet with the same timestamp (SPS, SEI...)


def _any(ts: int) -> bool:
    return True


class GopReplay:
    """Replays one outbound video stream from the current GOP's start up to the live edge."""

    __slots__ = ("out", "source", "next_seq", "start_ts", "sent", "t0", "owed", "done", "_array")

    def __init__(self, out: OutboundStream, source: SourceStream, first_seq: int, start_ts: int) -> None:
        self.out = out
        self.source = source
        self.next_seq = first_seq
        self.start_ts = start_ts
        self.sent = 0
        self.t0 = time.monotonic()
        self.owed = 0  # history packets due at the group's next flush (batched groups)
        self.done = False  # caught up or abandoned: the stream continues live, gated as usual
        self._array = None

    @classmethod
    def plan(cls, out: OutboundStream, source: SourceStream, max_age: float) -> GopReplay | None:
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
        if count > history.size // 2:
            return None
        for i in range(count):
            if history.get((first + i) & 0xFFFF) is None:
                return None  # a packet the publisher lost: the subscriber could not decode past it
        return cls(out, source, first, source.gop_ts)

    def start(self) -> None:
        """Send the keyframe's frame now; the rest follows the live packets (``advance``)."""
        self.out.fast_started = True
        self._send_while(lambda ts: ts == self.start_ts, limit=self.source.history.size)

    def advance(self, source: SourceStream, batched: bool) -> bool:
        """A live packet of ``source`` arrived (it is in the history): send the next few, or with
        ``batched`` owe them to the next ``flush``. True when the replay now owes a flush it did not."""
        if source is not self.source or time.monotonic() - self.t0 > MAX_SECONDS:
            self.done = True  # the source changed, or far too slow: back to normal gating
            return False
        if batched:
            self.owed += PER_PACKET
            return self.owed == PER_PACKET
        self._send_while(_any, limit=PER_PACKET)
        return False

    def flush(self) -> None:
        """Send what the live packets since the last flush made due (the group's flush calls it)."""
        owed, self.owed = self.owed, 0
        if owed and not self.done:
            self._send_while(_any, limit=owed)

    def _send_while(self, due: Callable[[int], bool], limit: int) -> None:
        out, source = self.out, self.source
        history = source.history
        live_edge = (source.last_seq + 1) & 0xFFFF
        batch: list[tuple[int, int, int, bytes]] = []  # through the C loop in one go, GSO-batched
        try:
            for _ in range(limit):
                if self.next_seq == live_edge:
                    break
                entry = history.get(self.next_seq)
                if entry is None:
                    self.done = True  # overwritten: continue live (the subscriber NACKs or asks for a keyframe)
                    return
                ts, marker, payload = entry
                if not due(ts):
                    return
                if self.sent == 0:
                    out.start_epoch(source, self.next_seq, ts)  # the keyframe: the stream's epoch starts
                if self.sent == 0 or not out.native:
                    out.send(self.next_seq, ts, marker, payload)
                else:
                    batch.append((self.next_seq, ts, marker, payload))
                self.sent += 1
                self.next_seq = (self.next_seq + 1) & 0xFFFF
            if self.next_seq == live_edge:
                self.done = True  # caught up: the next live packet is forwarded as usual
        finally:
            if batch:
                if self._array is None:
                    self._array = fanout.one_target(out.target)
                if fanout.send_to_one(self._array, batch) and out.on_failure is not None:
                    out.on_failure()
