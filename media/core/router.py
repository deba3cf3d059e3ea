"""Router: a conference's media switch (mediasoup's noun).

Every producer's packets arrive here; those of the *active* source of each kind are fanned out to the
consumers' outbound streams. A switch of video source (speaker reconnects, a point takes the floor)
becomes effective at the new source's first keyframe, and until then the old source keeps flowing,
so subscribers never see a broken picture and never re-signal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from media.core.codecs import is_keyframe
from media.egress.fanout import FastFanout
from media.egress.gop_replay import GopReplay
from media.egress.outbound import OutboundStream
from media.core.source import SourceStream

log = logging.getLogger(__name__)

KINDS = ("audio", "video")
PacketTap = Callable[[SourceStream, int, int, int, bytes, bool], None]
# ("add" | "remove" | "sr", source): lets worker processes mirror this router's sources.
SourceListener = Callable[[str, SourceStream], None]


class KeyframeSource(Protocol):
    def request_keyframe(self) -> None: ...


class PacketReader(Protocol):
    """A consumer of the conference's *active* sources that is not a WebRTC point (the recorder):
    it sees exactly what the points see, switches included, in arrival order."""

    def on_packet(self, source: SourceStream, seq: int, ts: int, marker: int, payload: bytes, key: bool) -> None: ...


class Router:
    def __init__(self, conference_id: str, keyframe_interval: float = 1.0, fast_start: float = 0.0) -> None:
        self.conference_id = conference_id
        self.keyframe_interval = keyframe_interval
        self.fast_start = fast_start  # seconds: a joiner replays a GOP this young (media.egress.gop_replay)
        self.active: dict[str, SourceStream | None] = {k: None for k in KINDS}
        self.pending: dict[str, SourceStream | None] = {k: None for k in KINDS}
        # Every outbound stream is in exactly one of these: steady on the active source -> the C loop
        # (``fast``); waiting for a keyframe, just switched, or no fast path built -> ``slow`` (Python).
        self.fast: dict[str, FastFanout] = {k: FastFanout() for k in KINDS}
        self.slow: dict[str, list[OutboundStream]] = {k: [] for k in KINDS}
        self.keyframe_sources: dict[int, KeyframeSource] = {}
        self.packet_taps: list[PacketTap] = []  # every packet of every source (the workers' mirror)
        self.readers: list[PacketReader] = []  # the active sources' packets (add_reader)
        self.source_listeners: list[SourceListener] = []
        # Batched: the C loop queues packets and ``flush`` sends each subscriber the batch in a few
        # calls (media.egress.fanout). Whoever feeds a batched router flushes it: the producers at the end
        # of each burst (media.ingest.burst_boundary), the media workers after each read of their socket.
        self.batched = False
        self.flush_listeners: list[Callable[[], None]] = []  # e.g. the mirror to the media workers
        self.catch_ups: list[GopReplay] = []  # fast starts owed history packets at the next flush
        self.keyframe_requests_sent = 0
        self._last_keyframe_request = 0.0
        self._keyframe_timer: asyncio.TimerHandle | None = None

    # --- sources -----------------------------------------------------------------------------
    def add_source(self, source: SourceStream, keyframes: KeyframeSource | None = None) -> None:
        """Make ``source`` the next source of its kind (audio at once, video at its first keyframe)."""
        if keyframes is not None:
            self.keyframe_sources[id(source)] = keyframes
        if source.kind == "video" and self.active["video"] is not None:
            self.pending["video"] = source
            self.request_keyframe()
        else:
            self.active[source.kind] = source
            self.pending[source.kind] = None
        self._notify("add", source)

    def remove_source(self, source: SourceStream) -> None:
        self.keyframe_sources.pop(id(source), None)
        if self.pending[source.kind] is source:
            self.pending[source.kind] = None
        # An ended active source stays as the continuity anchor for the next one: it simply stops.
        self._notify("remove", source)

    def sender_report(self, source: SourceStream, ntp_timestamp: int, rtp_timestamp: int) -> None:
        source.on_sender_report(ntp_timestamp, rtp_timestamp)
        self._notify("sr", source)

    def _notify(self, change: str, source: SourceStream) -> None:
        for listener in self.source_listeners:
            try:
                listener(change, source)
            except Exception:
                log.exception("source listener failed")

    def on_rtp(
        self, source: SourceStream, seq: int, ts: int, marker: int, payload: bytes, key: bool | None = None
    ) -> None:
        """Every packet of every source (taps see them all; consumers only the active source's)."""
        kind = source.kind
        if key is None:
            key = kind == "video" and is_keyframe(source.codec, payload)
        source.history.put(seq, ts, marker, payload)
        source.last_seq = seq
        source.last_ts = ts
        source.last_arrival = time.time()
        source.packets += 1
        if key:
            source.keyframes += 1
            if ts != source.gop_ts:
                source.gop_ts, source.gop_seq, source.gop_at = ts, seq, source.last_arrival
        for tap in self.packet_taps:
            tap(source, seq, ts, marker, payload, key)
        active = self.active[kind]
        if source is not active:
            if source is self.pending[kind] and key:
                self.active[kind] = active = source
                self.pending[kind] = None
            elif active is None:
                self.active[kind] = active = source
            else:
                return
        for reader in self.readers:
            reader.on_packet(source, seq, ts, marker, payload, key)
        fast = self.fast[kind]
        if fast.members:
            if fast.source is source:
                if self.batched:
                    fast.queue(seq, ts, marker, payload)
                else:
                    fast.forward(seq, ts, marker, payload)
            else:
                self.slow[kind].extend(fast.demote_all())
        slow = self.slow[kind]
        if slow:
            ready = None
            for out in slow:
                out.forward(source, seq, ts, marker, payload, key)
                if out._fp is not None and out.source is source and out.pt >= 0 and out.catch_up is None:
                    if ready is None:
                        ready = []
                    ready.append(out)
            if ready is not None:
                fast.source = source
                for out in ready:
                    slow.remove(out)
                    fast.add(out)

    def flush(self) -> None:
        """Send what the C loop queued (batched routers: after each batch of received packets)."""
        for listener in self.flush_listeners:  # the workers first: they fan out in parallel with us
            listener()
        self.fast["video"].flush_with(self.fast["audio"])  # a point's audio rides with its video
        if self.catch_ups:
            catch_ups, self.catch_ups = self.catch_ups, []
            for catch_up in catch_ups:
                catch_up.flush()

    # --- consumers -----------------------------------------------------------------------------
    def add_reader(self, reader: PacketReader) -> None:
        """Feed ``reader`` the active sources' packets from now on; its video starts at a keyframe
        asked for like a point's (merged with theirs)."""
        self.readers.append(reader)
        self.request_keyframe()

    def remove_reader(self, reader: PacketReader) -> None:
        if reader in self.readers:
            self.readers.remove(reader)

    def add_outbound(self, stream: OutboundStream) -> None:
        stream.router = self
        self.slow[stream.kind].append(stream)
        if stream.kind == "video" and not self._fast_start(stream):
            self.request_keyframe()

    def _fast_start(self, stream: OutboundStream) -> bool:
        """Start ``stream`` from the current GOP's keyframe when it is young enough (no request)."""
        source = self.active["video"]
        if self.fast_start <= 0 or source is None or self.pending["video"] is not None:
            return False
        catch_up = GopReplay.plan(stream, source, self.fast_start)
        if catch_up is None:
            return False
        catch_up.start()
        return True

    def remove_outbound(self, stream: OutboundStream) -> None:
        if stream.catch_up is not None:
            stream.catch_up.cancel()
        if not self.fast[stream.kind].remove(stream):
            try:
                self.slow[stream.kind].remove(stream)
            except ValueError:
                pass
        stream.router = None
        stream.release()

    @property
    def consumer_count(self) -> int:
        return self._streams("video") or self._streams("audio")

    def _streams(self, kind: str) -> int:
        return len(self.fast[kind].members) + len(self.slow[kind])

    # --- keyframes ---------------------------------------------------------------------------
    def request_keyframe(self, requester: OutboundStream | None = None) -> None:
        """Merge keyframe requests and send at most one per ``keyframe_interval`` upstream."""
        if requester is not None:
            requester.keyframe_requests += 1
        if self._keyframe_timer is not None:
            return
        wait = self._last_keyframe_request + self.keyframe_interval - time.monotonic()
        if wait <= 0:
            self._send_keyframe_request()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._keyframe_timer = loop.call_later(wait, self._send_keyframe_request)

    def _send_keyframe_request(self) -> None:
        self._keyframe_timer = None
        self._last_keyframe_request = time.monotonic()
        source = self.pending["video"] or self.active["video"]
        target = self.keyframe_sources.get(id(source)) if source is not None else None
        if target is None:
            return
        self.keyframe_requests_sent += 1
        try:
            target.request_keyframe()
        except Exception:
            log.exception("keyframe request failed")

    def close(self) -> None:
        if self._keyframe_timer is not None:
            self._keyframe_timer.cancel()
            self._keyframe_timer = None
