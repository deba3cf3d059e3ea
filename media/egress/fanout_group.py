"""FanoutGroup: the subscribers of one kind of a conference, and everything about sending to them.

The router hands it each packet of the active source of its kind (media.core.router); the group
decides, per stream, what happens to it:

- a stream not yet on that source waits (video) for a keyframe, asking the router for one, then
  starts a new epoch there (``OutboundStream.start_epoch``: its numbering continues); a stream
  switching rendition keeps getting the old one from its old group (``leaving``) until then;
- a stream that joined mid-GOP may instead replay the GOP from its keyframe (media.egress.gop_replay);
- a stream steady on the source, with a C target, is in the C set (``FastFanout``) and costs no
  Python per packet; the rest (waiting, replaying, just switched, no C target) take the Python path.

When a packet of another source arrives, the whole C set falls back to the Python path and rejoins
after that source's keyframe. Batched groups queue a wake-up's packets; ``flush`` sends them, the
paired group's (a point's audio with its video) in the same send calls, then what the replays owe.
"""

from __future__ import annotations

from media.core.group import KeyframeRequest
from media.core.source import SourceStream
from media.egress.fanout import NO_PT, FastFanout
from media.egress.gop_replay import GopReplay
from media.egress.outbound import OutboundStream


class FanoutGroup:
    __slots__ = ("kind", "fast_start", "batched", "_request_keyframe", "c_set", "_slow", "_replays", "_owed")

    def __init__(self, kind: str, request_keyframe: KeyframeRequest, fast_start: float = 0.0) -> None:
        """``fast_start``: seconds; a video joiner replays a GOP this young instead of asking for a keyframe."""
        self.kind = kind
        self.fast_start = fast_start
        self.batched = False
        self._request_keyframe = request_keyframe
        # Every stream is in exactly one of these: steady on the active source -> the C loop
        # (``c_set``); waiting for a keyframe, replaying, just switched, or no C target -> ``_slow``.
        self.c_set = FastFanout()  # its ``members`` are the streams the C loop forwards now
        self._slow: list[OutboundStream] = []
        self._replays: dict[OutboundStream, GopReplay] = {}
        self._owed: list[GopReplay] = []  # replays owed history packets at the next flush

    def __len__(self) -> int:
        return len(self.c_set.members) + len(self._slow)

    def replaying(self, out: OutboundStream) -> bool:
        """Whether ``out`` is replaying the current GOP (its live packets wait)."""
        return out in self._replays

    def add(self, out: OutboundStream, settled: SourceStream | None) -> bool:
        """Take ``out`` in on the Python path; a video stream replays ``settled``'s current GOP when
        it is young enough. True when it must wait for a new keyframe instead."""
        self._slow.append(out)
        if self.kind != "video":
            return False
        replay = None
        if self.fast_start > 0 and settled is not None:
            replay = GopReplay.plan(out, settled, self.fast_start)
        if replay is None:
            return True
        replay.start()
        if not replay.done:
            self._replays[out] = replay
        return False

    def remove(self, out: OutboundStream, release: bool = True) -> None:
        """``release``: the stream leaves for good (its descriptor is given back); False when it
        moves to another group (a rendition switch, ``Router.move_outbound``)."""
        replay = self._replays.pop(out, None)
        if replay is not None:
            replay.done = True
        if not self.c_set.remove(out):
            try:
                self._slow.remove(out)
            except ValueError:
                pass
        if release:
            out.release()

    def forward(self, source: SourceStream, seq: int, ts: int, marker: int, payload: bytes, key: bool) -> None:
        fast = self.c_set
        if fast.members:
            if fast.source is source:
                if self.batched:
                    fast.queue(seq, ts, marker, payload)
                else:
                    fast.forward(seq, ts, marker, payload)
            else:
                self._slow.extend(fast.demote_all())  # type: ignore[arg-type]
        if self._slow:
            self._forward_slow(source, seq, ts, marker, payload, key)

    def _forward_slow(self, source: SourceStream, seq: int, ts: int, marker: int, payload: bytes, key: bool) -> None:
        """The Python path: gating, new epochs, replays; then the streams now steady join the C set."""
        gated = self.kind == "video" and not key
        replays = self._replays
        ready = None
        for out in self._slow:
            replay = replays.get(out) if replays else None
            if replay is not None:
                if replay.advance(source, self.batched):
                    self._owed.append(replay)
                if not replay.done:
                    continue  # this packet reaches the stream through the replay
                del replays[out]
            else:
                leaving = out.leaving
                if leaving is self:  # on its way to another track: fed here until that one takes it
                    leaving = None
                sent = False
                if out.source is not source:
                    if gated:
                        self._request_keyframe(out)
                        continue
                    if leaving is not None:  # a switch of track: the old group stops here
                        leaving.remove(out, release=False)
                        out.leaving = None
                    out.start_epoch(source, seq, ts)
                elif leaving is not None:  # the same source on both tracks: taken over, same epoch
                    leaving.remove(out, release=False)
                    out.leaving = None
                    sent = out.target.last_seq == seq  # the old group sent this very packet already
                if out.target.pt != NO_PT and not sent:
                    out.send(seq, ts, marker, payload)
            if out.native and out.source is source and out.target.pt != NO_PT:
                if ready is None:
                    ready = []
                ready.append(out)
        if ready is not None:
            fast = self.c_set
            fast.source = source
            for out in ready:
                self._slow.remove(out)
                fast.add(out)

    def flush(self, paired: FanoutGroup | None = None) -> None:
        """Send what was queued (with ``paired``'s, a point's two streams in the same calls), then
        what the live packets since the last flush made the replays owe."""
        if paired is None:
            self.c_set.flush()
        else:
            self.c_set.flush_with(paired.c_set)
            paired._flush_replays()
        self._flush_replays()

    def _flush_replays(self) -> None:
        if not self._owed:
            return
        owed, self._owed = self._owed, []
        for replay in owed:
            replay.flush()
            if replay.done and self._replays.get(replay.out) is replay:
                del self._replays[replay.out]
