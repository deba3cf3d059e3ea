"""Router: a conference's media switch (mediasoup's noun).

Every producer's packets arrive here; those of the *active* source of each kind go to that kind's
group of subscribers (media.core.group; media.egress.fanout_group sends them) and to the readers (the
recorder). A switch of video source (speaker reconnects, a point takes the floor) becomes effective
at the new source's first keyframe, and until then the old source keeps flowing, so subscribers
never see a broken picture and never re-signal. Keyframe requests, the router's own and its
subscribers', are merged here into at most one per ``keyframe_interval``.

Tracks: each kind has its main track (``audio``, ``video``: what every subscriber and the recorder
get), and the hall has a ``return`` audio track, the mix-minus of a dialogue (the point's voice
without the hall's own, media.floor.stage): a subscriber's stream names its track. Which source a
track carries is chosen with ``select`` (``add_source`` selects the new source unless told not to);
the media workers mirror every selection (``selection_listeners``).

Readers (``add_reader``) get the program: the main tracks' packets. A reader of the ``low`` track
(the recorder of the live HLS low variant) gets the low rendition's video and the program's audio,
and counts as demand for the low track while it reads (the transcoder runs for it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from media.core.codecs import is_keyframe
from media.core.group import Group, GroupFactory, Subscriber
from media.core.source import SourceStream

log = logging.getLogger(__name__)

KINDS = ("audio", "video")
# track -> the kind it carries: the program's sound and picture, the dialogue's two mix-minus
# tracks, and the program's low video rendition (for weak links: media.renditions)
TRACKS = {"audio": "audio", "video": "video", "return": "audio", "to_point": "audio", "low": "video"}
# Audio tracks beside the program's: the hall's return (the floor point's voice alone) and the floor
# point's (the hall's voice alone): each side of a dialogue hears the other, not itself.
SIDE_AUDIO = ("return", "to_point")
PacketTap = Callable[[SourceStream, int, int, int, bytes, bool], None]
# ("add" | "remove" | "sr", source): lets worker processes mirror this router's sources.
SourceListener = Callable[[str, SourceStream], None]
# (track, source or None): a selection (workers mirror it), or a video switch taking effect.
TrackListener = Callable[[str, SourceStream | None], None]


class KeyframeSource(Protocol):
    def request_keyframe(self) -> None: ...


class PacketReader(Protocol):
    """A consumer of the conference's *active* sources that is not a WebRTC point (the recorder):
    it sees exactly what the points see, switches included, in arrival order."""

    def on_packet(self, source: SourceStream, seq: int, ts: int, marker: int, payload: bytes, key: bool) -> None: ...


class Router:
    def __init__(self, conference_id: str, groups: GroupFactory, keyframe_interval: float = 1.0) -> None:
        """``groups`` builds the subscribers' group of each kind (media.egress.fanout_group.FanoutGroup)."""
        self.conference_id = conference_id
        self.keyframe_interval = keyframe_interval
        self.active: dict[str, SourceStream | None] = {t: None for t in TRACKS}
        self.pending: dict[str, SourceStream | None] = {t: None for t in TRACKS}
        self.groups: dict[str, Group] = {t: groups(kind, self.request_keyframe) for t, kind in TRACKS.items()}
        self.demand_listeners: list[Callable[[str, int], None]] = []  # (track, subscribers on it) on change
        self.keyframe_sources: dict[int, KeyframeSource] = {}
        self.packet_taps: list[PacketTap] = []  # every packet of every source (the workers' mirror, the mix)
        self.readers: list[PacketReader] = []  # the active sources' packets (add_reader)
        self.low_readers: list[PacketReader] = []  # the low track's video and the program's audio
        self._readers_of = {"audio": self.readers, "video": self.readers}  # per kind of a program packet
        self.source_listeners: list[SourceListener] = []
        self.selection_listeners: list[TrackListener] = []  # every select (the workers' mirror)
        self.switch_listeners: list[TrackListener] = []  # a pending video source became active
        self.flush_listeners: list[Callable[[], None]] = []  # e.g. the mirror to the media workers
        self._batched = False
        self.keyframe_requests_sent = 0
        self._last_keyframe_request: dict[int, float] = {}  # id(source) -> when it was last asked
        self._keyframe_timers: dict[str, asyncio.TimerHandle] = {}

    @property
    def batched(self) -> bool:
        """Batched: the groups queue packets and ``flush`` sends each subscriber the batch in a few
        calls. Whoever feeds a batched router flushes it: the producers at the end of each burst
        (media.ingest.burst_boundary), the media workers after each read of their socket."""
        return self._batched

    @batched.setter
    def batched(self, on: bool) -> None:
        self._batched = on
        for group in self.groups.values():
            group.batched = on

    # --- sources -----------------------------------------------------------------------------
    def add_source(self, source: SourceStream, keyframes: KeyframeSource | None = None, select: bool = True) -> None:
        """A new source; with ``select`` it becomes the next of its kind's main track."""
        if keyframes is not None:
            self.keyframe_sources[id(source)] = keyframes
        self._notify("add", source)
        if select:
            self.select(source)

    def select(self, source: SourceStream | None, track: str | None = None) -> None:
        """Make ``source`` the next source of ``track`` (default: its kind's main track): audio at
        once, video at its first keyframe (the current one flows until then). ``None`` empties
        the track (the return track between dialogues)."""
        track = track or source.kind  # type: ignore[union-attr]
        if TRACKS[track] == "video" and source is not None and self.active[track] not in (None, source):
            self.pending[track] = source
            timer = self._keyframe_timers.pop(track, None)
            if timer is not None:  # it was waiting on the previous source's bound
                timer.cancel()
            self.request_keyframe(track=track)
        else:
            self.active[track] = source
            self.pending[track] = None
        for listener in self.selection_listeners:
            try:
                listener(track, source)
            except Exception:
                log.exception("selection listener failed")

    def remove_source(self, source: SourceStream) -> None:
        self.keyframe_sources.pop(id(source), None)
        self._last_keyframe_request.pop(id(source), None)
        for track in TRACKS:
            if self.pending[track] is source:
                self.pending[track] = None
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
            if kind == "audio":
                self._side_audio(source, seq, ts, marker, payload, key)
                if source is self.active["return"] or source is self.active["to_point"]:
                    return
            if kind == "video" and self._low(source, key):
                self.groups["low"].forward(source, seq, ts, marker, payload, key)
                for reader in self.low_readers:
                    reader.on_packet(source, seq, ts, marker, payload, key)
                return
            if source is self.pending[kind] and key:
                self.active[kind] = active = source
                self.pending[kind] = None
                for listener in self.switch_listeners:
                    listener(kind, source)
            elif active is None:
                self.active[kind] = active = source
            else:
                return
        for reader in self._readers_of[kind]:
            reader.on_packet(source, seq, ts, marker, payload, key)
        self.groups[kind].forward(source, seq, ts, marker, payload, key)
        if kind == "audio" and (self.active["return"] is not None or self.active["to_point"] is not None):
            self._side_audio(source, seq, ts, marker, payload, key)

    def _side_audio(self, source: SourceStream, seq: int, ts: int, marker: int, payload: bytes, key: bool) -> None:
        for track in SIDE_AUDIO:
            if source is self.active[track]:
                self.groups[track].forward(source, seq, ts, marker, payload, key)

    def _low(self, source: SourceStream, key: bool) -> bool:
        """Whether ``source`` feeds the low rendition's track (switching to it at its keyframe)."""
        if source is self.active["low"]:
            return True
        if source is self.pending["low"] and key:
            self.active["low"], self.pending["low"] = source, None
            return True
        return False

    def flush(self) -> None:
        """Send what the groups queued (batched routers: after each batch of received packets)."""
        for listener in self.flush_listeners:  # the workers first: they fan out in parallel with us
            listener()
        groups = self.groups
        groups["video"].flush(groups["audio"])  # a point's audio rides with its video
        groups["return"].flush()
        groups["to_point"].flush()
        groups["low"].flush()

    # --- consumers -----------------------------------------------------------------------------
    def add_reader(self, reader: PacketReader, track: str = "video") -> None:
        """Feed ``reader`` the active sources' packets from now on (``track`` "low": the low
        rendition's video instead of the program's); its video starts at a keyframe of the program,
        asked for like a point's (merged with theirs): the low rendition has its keyframes there too."""
        (self.low_readers if track == "low" else self.readers).append(reader)
        self._readers_changed(track)
        self.request_keyframe()

    def remove_reader(self, reader: PacketReader) -> None:
        for track, readers in (("video", self.readers), ("low", self.low_readers)):
            if reader in readers:
                readers.remove(reader)
                self._readers_changed(track)

    def _readers_changed(self, track: str) -> None:
        # The program's audio goes to both kinds of reader: one list, so a packet costs one loop.
        self._readers_of["audio"] = self.readers + self.low_readers if self.low_readers else self.readers
        self._demand(track)

    def add_outbound(self, stream: Subscriber) -> None:
        """A subscriber's stream joins its kind's group; video starts at a keyframe asked for unless
        the group can start it from the current GOP."""
        track = stream.track
        settled = self.active[track] if self.pending[track] is None else None
        if self.groups[track].add(stream, settled):
            self.request_keyframe(track=track)
        self._demand(track)

    def remove_outbound(self, stream: Subscriber) -> None:
        if stream.leaving is not None:
            stream.leaving.remove(stream, release=False)
            stream.leaving = None
        if stream.track:
            self.groups[stream.track].remove(stream)
            self._demand(stream.track)
        else:
            stream.release()  # type: ignore[attr-defined]

    def move_outbound(self, stream: Subscriber, track: str | None) -> None:
        """Feed a stream from another track of its kind: a rendition switch (video; None: no video,
        the link's audio only), or a side of a dialogue (audio). It keeps receiving the old track
        until the new one's next packet (video: keyframe), then starts a new epoch there (no
        re-signalling)."""
        new_track, old_track = track or "", stream.track
        if new_track == old_track:
            return
        feeding = stream.leaving  # a switch still pending: the old group feeds it until then
        if feeding is not None:
            self.groups[old_track].remove(stream, release=False)
            stream.leaving = None
        elif old_track:
            feeding = self.groups[old_track]
        stream.track = new_track
        if not new_track:
            if feeding is not None:
                feeding.remove(stream, release=False)
        elif feeding is self.groups[new_track]:
            pass  # back to the group that still feeds it: nothing changes
        else:
            stream.leaving = feeding
            if self.groups[new_track].add(stream, None):
                self.request_keyframe(stream)
        for changed in {old_track, new_track} - {""}:
            self._demand(changed)

    def _demand(self, track: str) -> None:
        if track != "low":
            return
        count = self.low_demand()
        for listener in self.demand_listeners:
            try:
                listener(track, count)
            except Exception:
                log.exception("demand listener failed")

    def low_demand(self) -> int:
        """Who needs the low rendition here: the points on it and the low track's readers."""
        return len(self.groups["low"]) + len(self.low_readers)  # type: ignore[arg-type]

    # --- keyframes ---------------------------------------------------------------------------
    def request_keyframe(self, requester: Subscriber | None = None, track: str | None = None) -> None:
        """Merge keyframe requests and send at most one per ``keyframe_interval`` upstream, per video
        track (the requester's: a point on the low rendition asks the low rendition's source)."""
        if requester is not None:
            requester.keyframe_requests += 1
            track = track or requester.track
        if track not in ("video", "low"):
            track = "video"
        if track in self._keyframe_timers:
            return
        source = self.pending[track] or self.active[track]
        # The bound is per publisher asked: a source just selected (a point given the floor) is
        # asked at once, whatever its track's previous source was asked lately.
        last = self._last_keyframe_request.get(id(source), 0.0) if source is not None else 0.0
        wait = last + self.keyframe_interval - time.monotonic()
        if wait <= 0:
            self._send_keyframe_request(track)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._keyframe_timers[track] = loop.call_later(wait, self._send_keyframe_request, track)

    def _send_keyframe_request(self, track: str = "video") -> None:
        self._keyframe_timers.pop(track, None)
        source = self.pending[track] or self.active[track]
        target = self.keyframe_sources.get(id(source)) if source is not None else None
        if target is None:
            return
        self._last_keyframe_request[id(source)] = time.monotonic()
        self.keyframe_requests_sent += 1
        try:
            target.request_keyframe()
        except Exception:
            log.exception("keyframe request failed")

    def close(self) -> None:
        for timer in self._keyframe_timers.values():
            timer.cancel()
        self._keyframe_timers.clear()
