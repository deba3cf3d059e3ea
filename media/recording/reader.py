"""RecordingReader: the recorder as one more reader of a conference's Router.

The Router calls :meth:`RecordingReader.on_packet` on the event loop for every packet of its active
source of each kind, after its own switch decision, so the recorder sees exactly what the points see.
The reader only appends the packet to the recorder's inbox, which its writer thread drains: one
cheap call per packet for the loop, no lock, never blocking. The inbox is bounded: when the writer
falls behind (a stalled disk) packets are dropped and counted, and the writer's reassembly takes the
gaps for loss (it waits for a keyframe).

A reader with ``keys`` also remembers the RTP timestamps of its latest video keyframes: the low
variant's recorder cuts its segments only at those (media.recording.recorder), so both variants
cut at the same pictures even when points on the low rendition asked it for keyframes of its own.
"""

from __future__ import annotations

import collections

from media.core.source import SourceStream


class RecordingReader:
    __slots__ = ("inbox", "capacity", "dropped", "keys")

    def __init__(self, inbox: collections.deque, capacity: int) -> None:
        self.inbox = inbox
        self.capacity = capacity
        self.dropped = 0  # packets not enqueued: the writer was behind by ``capacity`` (or stopped)
        self.keys: collections.deque[int] | None = None  # recent keyframe timestamps, when kept

    def on_packet(self, source: SourceStream, seq: int, ts: int, marker: int, payload: bytes, key: bool) -> None:
        if key and self.keys is not None:
            self.keys.append(ts)
        if len(self.inbox) < self.capacity:
            self.inbox.append((source, seq, ts, marker, payload))
        else:
            self.dropped += 1

    def close(self) -> None:
        """Take nothing more (the recording is stopping)."""
        self.capacity = 0
