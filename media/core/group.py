"""What the router needs of the subscribers of one kind: a group it hands the active source's packets.

The router decides *which* packets reach subscribers (the active source, switched at a keyframe) and
merges keyframe requests; how each subscriber's stream is numbered, gated, replayed and sent is the
group's (media.egress.fanout_group.FanoutGroup). The router builds one group per kind from a factory
it is given, so the core never imports the send path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from media.core.source import SourceStream


class Subscriber(Protocol):
    """A subscriber's stream of one kind, as far as the router sees it."""

    kind: str
    track: str  # the router's track it is fed from (media.core.router.TRACKS): its kind, "return" or "low"
    leaving: "Group | None"  # the group still feeding it until a switch of track takes effect
    keyframe_requests: int  # this stream's share of the merged requests (its stats)


KeyframeRequest = Callable[[Subscriber | None], None]  # Router.request_keyframe


class Group(Protocol):
    batched: bool  # queue packets until ``flush`` (True) or send each at once

    def add(self, stream: Subscriber, settled: SourceStream | None) -> bool:
        """Take ``stream`` in; ``settled`` is the active source when no switch is pending. True when
        the stream can only start at a new keyframe (the router then asks the publisher for one)."""
        ...

    def remove(self, stream: Subscriber, release: bool = True) -> None: ...

    def forward(self, source: SourceStream, seq: int, ts: int, marker: int, payload: bytes, key: bool) -> None:
        """One packet of the active source of the group's kind."""
        ...

    def flush(self, paired: Group | None = None) -> None:
        """Send what was queued; with ``paired`` (the other kind's group) a point's two streams
        leave in the same send calls."""
        ...


GroupFactory = Callable[[str, KeyframeRequest], Group]  # (kind, the router's keyframe request) -> group
