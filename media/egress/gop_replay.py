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
included). Replayed packets go through the C loop when it is built, batched like the fan-out's: on
a batched router a live packet only adds to what the joiner is owed, and the router's flush sends
it, so a wake-up's live packets cost one C call per joiner, not one each (in a join storm the
per-packet calls were a tenth of a worker's CPU).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from media.egress import fanout
from media.core.history import HISTORY_SIZE

if TYPE_CHECKING:
    from media.egress.outbound import OutboundStream
    from media.core.source import SourceStream

PER_PACKET = 2  # history packets sent per live packet: catches up at ~2x real time
MAX_SECONDS = 10.0  # a catch-up that has not finished by then is abandoned (normal gating resumes)
MAX_BACKTRACK = 64  # packets before the flagged keyframe packet with the same timestamp (SPS, SEI...)


class GopReplay:
    """Replays one outbound video stream from the current GOP's start up to the live edge."""

    __slots__ = ("out", "source", "next_seq", "start_ts", "sent", "t0", "owed", "_array")

    def __init__(self, out: "OutboundStream", source: "SourceStream", first_seq: int, start_ts: int) -> None:
        self.out = out
        self.source = source
        self.next_seq = first_seq
        self.start_ts = start_ts
        self.sent = 0
        self.t0 = time.monotonic()
        self.owed = 0  # history packets due at the router's next flush (batched routers)
        self._array = None

    @classmethod
    def plan(cls, out: "OutboundStream", source: "SourceStream", max_age: float) -> "GopReplay | None":
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

    def start(self) -> None:
        """Send the keyframe's frame now; the rest follows the live packets (``advance``)."""
        self.out.catch_up = self
        self.out.fast_started = True
        self._send_while(lambda ts: ts == self.start_ts, limit=HISTORY_SIZE)

    def advance(self) -> None:
        """A live packet of the source arrived (it is in the history): send the next few."""
        out = self.out
        router = out.router
        if router is None or router.active[out.kind] is not self.source or time.monotonic() - self.t0 > MAX_SECONDS:
            self.cancel()  # left the router, the source changed, or far too slow: back to normal gating
            return
        if router.batched:
            if not self.owed:
                router.catch_ups.append(self)
            self.owed += PER_PACKET
        else:
            self._send_while(lambda ts: True, limit=PER_PACKET)

    def flush(self) -> None:
        """Send what the live packets since the last flush made due (the router's flush calls it)."""
        owed, self.owed = self.owed, 0
        if owed and self.out.catch_up is self:
            self._send_while(lambda ts: True, limit=owed)

    def cancel(self) -> None:
        if self.out.catch_up is self:
            self.out.catch_up = None

    def _send_while(self, due, limit: int) -> None:  # type: ignore[no-untyped-def]
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
                    out.catch_up = None  # overwritten: continue live (the subscriber NACKs or asks for a keyframe)
                    return
                ts, marker, payload = entry
                if not due(ts):
                    return
                if self.sent == 0 or out._fp is None:
                    out.catch_up = None  # forward() holds live packets back while a catch-up is set
                    out.forward(source, self.next_seq, ts, marker, payload, self.sent == 0)
                    out.catch_up = self
                else:
                    batch.append((self.next_seq, ts, marker, payload))
                self.sent += 1
                self.next_seq = (self.next_seq + 1) & 0xFFFF
            if self.next_seq == live_edge:
                out.catch_up = None  # caught up: the next live packet is forwarded as usual
        finally:
            if batch:
                if self._array is None:
                    self._array = fanout.one_target(out)
                fanout.send_to_one(out, self._array, batch)
