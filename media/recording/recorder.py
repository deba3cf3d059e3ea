"""Recorder: one recording of one conference, written by one thread into an HLS directory.

The conference's Router feeds :attr:`Recorder.reader` the packets of its active sources, the ones the
points see, switches included; the reader only enqueues them (``media.recording.reader``). A single
writer thread owns everything else: reassembly into frames (``media.recording.reassembly``), timing,
the current :class:`RunMuxer`, files and playlist.

Publishers. The manager tells the recorder which publishers (producers) it may record and their
recordable kinds (:meth:`add_publisher`), and when one leaves (:meth:`publisher_closed`). The router
only hands over a new video source at its keyframe, so the recording switches where the packets
switch: a frame of a new video source epoch ends the run and starts the next at that keyframe. The router switches audio at once, so a newcomer's audio is held (``AUDIO_LOOKBEHIND``)
until its video takes over, unless it has no video: then it takes over at once.

Timing. Each publisher's sources are tied to one wall clock (:meth:`set_clocks`, from its sender
reports or, failing those, its packets' arrival: ``media.recording.sync``); until then its frames wait
in a small buffer. RTP timestamps are unwrapped from there (``media.recording.timestamps``). A run
starts at a keyframe; its clock is that keyframe's time, less the decode delay of a stream with
B-frames: frames arrive in decode order carrying presentation times, and their decode times are
derived from the SPS's reorder depth (``timestamps.DecodeClock``). A stream that reorders deeper than
its SPS says starts a new run with the depth it showed. The next run continues the timeline behind a
discontinuity (same playlist, same directory); so does a change of SPS/PPS mid-stream (a resolution
change needs a new init segment).

Keyframes. Requests (at a publisher's start, when a segment would grow past its target, after a
lost packet, a pause for disk room or a restart for deep reordering) go to ``request_keyframe``,
which the manager hands to the conference Router (merged with the points' requests there).

Disk space. With ``room`` given, the writer asks it (at most once a second) before writing: without
room the run is closed and frames are dropped; with room again, the next keyframe starts a new run.

Crash safety. Segments and the playlist are written to temporary names and renamed; the playlist
is rewritten after each segment, so after ``kill -9`` it names exactly the complete segments.

Variants. A recorder given a ``leader`` records another rendition of the leader's program (the low
variant of live HLS: the low track's video, the same audio) on the leader's timeline: each of its
runs is placed where the leader placed the same publisher's pictures (resolved at the run's first
segment, when the leader has long started its run), and its segments are cut only at the leader's
keyframes (``leader.reader.keys``), so both variants' segments start at the same pictures (a stray
keyframe made for the points on the low rendition alone cuts only a segment grown to twice its
length). A variant whose keyframes are not the leader's (a publisher's own low track, with
timestamps of its own) is cut at any keyframe, and asks its own track for them. Its sound waits for its picture, which the
transcode delays, so that each segment holds as much of one as of the other.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from media.core.source import SourceStream
from media.recording import h264
from media.recording.audio import RATE as AUDIO_RATE
from media.recording.audio import AudioProfile, OpusDecoder
from media.recording.files import PLAYLIST, init_name, segment_name
from media.recording.fmp4 import shift_tfdt
from media.recording.muxer import VIDEO_CLOCK, RunMuxer, VideoFormat
from media.recording.playlist import Segment, atomic_write, render
from media.recording.reader import RecordingReader
from media.recording.reassembly import FrameAssembler
from media.recording.sync import SourceClock, report_clock
from media.recording.timestamps import DecodeClock, RtpUnwrapper

log = logging.getLogger(__name__)

WRITER_TICK = 0.05  # seconds the writer sleeps when it has caught up
QUEUE_PACKETS = 12000  # ~50 s of 720p30 + Opus: a stalled disk drops packets instead of memory
PENDING_FRAMES = 600  # frames held per publisher until its clocks are known
AUDIO_LOOKBEHIND = 100  # audio frames kept while waiting for the first keyframe (2 s)
LEADER_KEYS = 64  # keyframe timestamps a leader keeps for its variants (minutes of them)
AUDIO_PACE_SECONDS = 5.0  # a variant's audio waits for its video at most this long
SAME_TIMELINE = 60.0  # seconds from now within which a program clock places a variant's frame: its timeline


@dataclass(frozen=True)
class RunPlace:
    """Where a run puts its publisher's pictures: publisher time ``t0`` at timeline ``offset``."""

    producer_id: str
    t0: float
    offset: float
    program_date_time: float


@dataclass
class _Publisher:
    """What the writer keeps of one publisher (a producer): its kinds, clocks and stream state."""

    producer_id: str
    kinds: frozenset[str]
    clocks: dict[str, SourceClock] | None = None  # None until set_clocks
    base: float = 0.0  # wall clock of the publisher's timeline zero
    pending: list[tuple[_Source, int, bytes | None]] = field(default_factory=list)
    audio_lookbehind: collections.deque = field(
        default_factory=lambda: collections.deque(maxlen=AUDIO_LOOKBEHIND)
    )
    sps: bytes | None = None
    pps: bytes | None = None
    needs_keyframe: bool = False
    reorder_seen: int = 0  # reorder depth the stream showed beyond what its SPS announced


class _Source:
    """One source epoch as the writer sees it: its frames and their place on the publisher's timeline."""

    __slots__ = ("kind", "publisher", "frames", "clock", "offset", "rate", "own_clock", "picture")

    def __init__(self, source: SourceStream, publisher: _Publisher, variant: bool = False) -> None:
        self.kind = source.kind
        self.publisher = publisher
        self.frames = FrameAssembler(source.kind == "video")
        self.rate = source.clock_rate
        self.clock: RtpUnwrapper | None = None  # from the first frame after the publisher's clocks
        self.offset = 0.0  # seconds from the publisher's zero to the clock's origin
        # A source made on this machine (the dialogue mix) places itself: its report, set before
        # its first packet and never changed, is this machine's clock, as its publisher's
        # arrival clocks are (media.recording.manager).
        self.own_clock = report_clock(source) if source.local_clock else None
        # A variant's picture: another track than the program's that the publisher's clocks were
        # taken from (see time()).
        self.picture = source if variant and source.kind == "video" else None

    def time(self, ts: int) -> float:
        """Seconds on the publisher's timeline of RTP timestamp ``ts``."""
        if self.clock is None:
            p = self.publisher
            anchor = self.own_clock or (p.clocks or {}).get(self.kind)
            if self.picture is not None and (anchor is None or abs(anchor.at(ts) - time.time()) > SAME_TIMELINE):
                # Not on the program picture's RTP timeline (the transcoder keeps it): a publisher's
                # own low track, placed by its own sender report.
                anchor = report_clock(self.picture)
            anchor = anchor or SourceClock(ts, time.time(), self.rate)
            self.clock = RtpUnwrapper(anchor.rtp)
            self.offset = anchor.wall - p.base
        return self.offset + self.clock(ts) / self.rate


@dataclass
class RecorderStats:
    frames_video: int = 0
    frames_muxed: int = 0  # video frames written into segments ...
    video_ticks: int = 0  # ... and the 90 kHz time they last (a variant's FRAME-RATE)
    frames_audio: int = 0
    dropped_frames: int = 0
    keyframe_requests: int = 0
    runs: int = 0
    reorder_restarts: int = 0
    dropped_disk: int = 0  # frames not written for want of disk space


class Recorder:
    """Writes one recording; thread-safe entry points: :attr:`reader` (the Router's), :meth:`add_publisher`,
    :meth:`set_clocks`, :meth:`publisher_closed`, :meth:`stop`, and the read-only :attr:`segments`."""

    def __init__(
        self,
        recording_id: str,
        conference_id: str,
        directory: Path,
        segment_seconds: float = 2.0,
        on_segment: Callable[[Recorder, Segment], None] | None = None,
        audio: AudioProfile = AudioProfile(),
        room: Callable[[], bool] | None = None,
        request_keyframe: Callable[[], None] | None = None,
        leader: Recorder | None = None,
        request_own_keyframe: Callable[[], None] | None = None,
    ) -> None:
        self.id = recording_id
        self.leader = leader  # the recorder whose timeline and segment cuts this variant follows
        self.low: Recorder | None = None  # the low variant following this one (set by the manager)
        self.room = room or (lambda: True)
        self.request_keyframe = request_keyframe or (lambda: None)  # called on the writer thread
        # A variant's own track, asked too while its keyframes do not come with the leader's (a
        # publisher's own low track: its encoder makes keyframes only when asked).
        self.request_own_keyframe = request_own_keyframe or (lambda: None)
        self._follows = False  # this epoch's keyframes have come with the leader's (the transcoder's)
        self._stray = False  # ... but not the latest (one made for the points on the low rendition)
        self.paused_for_disk = False
        self.audio_profile = audio
        self.conference_id = conference_id
        self.directory = directory
        self.segment_seconds = segment_seconds
        self.on_segment = on_segment
        self.started_at = time.time()
        self.stats = RecorderStats()
        # Published by the writer thread (whole-object replacement, safe to read anywhere).
        self.segments: tuple[Segment, ...] = ()
        self.size_bytes = 0
        self.position = 0.0  # timeline position of the newest media written
        # (timeline position, producer id) of each run: where a point's dialogue begins (chapters)
        self.run_starts: list[tuple[float, str]] = []
        self.places: list[RunPlace] = []  # one per run, appended by the writer (a variant follows them)
        self.video_format: VideoFormat | None = None  # the latest picture's format (a variant's RESOLUTION)
        self.has_audio = False  # whether any run has sound
        self.finished = False
        # Packets (from the reader) and control items (str first), in order; deque appends and
        # pops are atomic, and the writer polls, so neither side ever takes a lock.
        self._inbox: collections.deque[tuple] = collections.deque()
        self.reader = RecordingReader(self._inbox, QUEUE_PACKETS)
        if leader is not None:
            leader.reader.keys = collections.deque(maxlen=LEADER_KEYS)
        self._publishers: dict[str, _Publisher] = {}
        self._sources: dict[int, _Source] = {}  # SourceStream.id -> state, for publishers added
        self._current: _Publisher | None = None  # whose media the recording follows
        self._video: _Source | None = None  # ... and the video source epoch of its run
        self._run: RunMuxer | None = None
        self._run_number = -1
        self._run_t0 = 0.0
        self._run_offset = 0.0  # timeline position where the current run starts
        self._run_pdt = 0.0
        self._run_fragments = 0
        self._run_producer = ""
        self._timeline_end = 0.0
        self._held: tuple[int, int, bytes, bool] | None = None  # last video frame (pts, dts, …) awaiting duration
        self._paced: collections.deque[tuple[float, bytes]] = collections.deque()  # a variant's audio (_pace_audio)
        self._decode_clock = DecodeClock(0, 0)
        self._run_front = 0  # the run's latest video pts
        self._last_video_duration = VIDEO_CLOCK // 30
        self._last_key_t = 0.0
        self._last_nudge = 0.0
        self._audio = OpusDecoder(audio.layout)
        self._segment_list: list[Segment] = []
        self._thread = threading.Thread(target=self._run_writer, name=f"recorder-{recording_id}", daemon=True)
        self._thread.start()

    # --- called from anywhere --------------------------------------------------------------------
    def add_publisher(self, producer_id: str, kinds: set[str]) -> None:
        """Record this producer's sources of these kinds (``video`` only if it is H.264) when the
        Router makes them active."""
        self._control(("publisher", producer_id, frozenset(kinds)))

    def set_clocks(self, producer_id: str, clocks: dict[str, SourceClock]) -> None:
        """Tie the publisher's kinds to one wall clock (a kind left out: by its first frame)."""
        self._control(("clocks", producer_id, dict(clocks)))

    def publisher_closed(self, producer_id: str) -> None:
        self._control(("closed", producer_id))

    def stop(self, timeout: float = 30.0) -> None:
        """Close the current run, write the final (VOD) playlist and end the thread. Blocking."""
        self.reader.close()
        self._control(("stop",))
        self._thread.join(timeout)

    @property
    def duration(self) -> float:
        return self._timeline_end

    @property
    def backlog(self) -> int:
        """Packets and control items the writer has not taken yet."""
        return len(self._inbox)

    def _control(self, item: tuple) -> None:
        self._inbox.append(item)  # past the reader's bound: control is never dropped

    # --- writer thread ---------------------------------------------------------------------------
    def _run_writer(self) -> None:
        # Packets arrive ~250 a second; waking for each one would cost more than handling it (thread
        # switches and GIL hand-overs with the event loop). The writer sleeps WRITER_TICK between
        # batches instead: live HLS is cut into seconds-long segments, so it is never later for it.
        inbox = self._inbox
        while True:
            try:
                item = inbox.popleft()
            except IndexError:
                time.sleep(WRITER_TICK)
                continue
            if item[0].__class__ is not str:
                try:
                    self._on_packet(*item)
                except Exception:
                    log.exception("recorder %s: a packet failed", self.id)
                    self._abandon_run()
                continue
            if item[0] == "stop":
                try:
                    self._end_run()
                    self._write_playlist(final=True)
                except Exception:
                    log.exception("recorder %s: finishing failed", self.id)
                finally:
                    self.finished = True
                return
            try:
                if item[0] == "publisher":
                    self._on_publisher(item[1], item[2])
                elif item[0] == "clocks":
                    self._on_clocks(item[1], item[2])
                elif item[0] == "closed":
                    self._on_closed(item[1])
            except Exception:
                log.exception("recorder %s: %s failed", self.id, item[0])

    def _on_packet(self, source: SourceStream, seq: int, ts: int, marker: int, payload: bytes) -> None:
        state = self._sources.get(source.id)
        if state is None:
            publisher = self._publishers.get(source.producer_id)
            if publisher is None or source.kind not in publisher.kinds:
                return  # not recordable, or its publisher has left
            state = self._sources[source.id] = _Source(source, publisher, self.leader is not None)
        for frame_ts, data in state.frames.push(seq, ts, marker, payload):
            self._on_frame(state, frame_ts, data)

    def _on_publisher(self, producer_id: str, kinds: frozenset[str]) -> None:
        self._publishers[producer_id] = _Publisher(producer_id, kinds)
        if "video" in kinds:
            self.request_keyframe()

    def _on_clocks(self, producer_id: str, clocks: dict[str, SourceClock]) -> None:
        p = self._publishers.get(producer_id)
        if p is None or p.clocks is not None:
            return
        p.clocks = clocks
        p.base = min((c.wall for c in clocks.values()), default=time.time())
        pending, p.pending = p.pending, []
        for state, ts, data in pending:
            self._handle(state, ts, data)

    def _on_closed(self, producer_id: str) -> None:
        p = self._publishers.pop(producer_id, None)
        if p is None:
            return
        for key in [k for k, s in self._sources.items() if s.publisher is p]:
            del self._sources[key]
        if p is self._current:
            self._end_run()
            self._current = self._video = None

    def _on_frame(self, state: _Source, ts: int, data: bytes | None) -> None:
        p = state.publisher
        if p.clocks is None:
            if len(p.pending) >= PENDING_FRAMES:
                p.pending.pop(0)
                p.needs_keyframe = True
            p.pending.append((state, ts, data))
            return
        self._handle(state, ts, data)

    def _handle(self, state: _Source, ts: int, data: bytes | None) -> None:
        p = state.publisher
        t = state.time(ts)
        if not self._disk_room(p):
            self.stats.dropped_disk += 1
            return
        if state.kind == "video":
            self.stats.frames_video += 1
            self._handle_video(state, t, data, ts)
        else:
            self.stats.frames_audio += 1
            self._handle_audio(p, t, data)  # type: ignore[arg-type]

    def _handle_video(self, state: _Source, t: float, data: bytes | None, ts: int) -> None:
        p = state.publisher
        if data is None:  # a packet of it was lost: the pictures after it wait for a keyframe
            self.stats.dropped_frames += 1
            p.needs_keyframe = True
            self._nudge(t, force=True)
            return
        au = h264.inspect(data)
        if au.sps is not None:
            p.sps = au.sps
        if au.pps is not None:
            p.pps = au.pps
        key = au.is_idr and p.sps is not None and p.pps is not None
        if key and (au.sps is None or au.pps is None):
            data = h264.annexb([p.sps, p.pps]) + data  # type: ignore[list-item]
        if p.needs_keyframe and not key:
            self.stats.dropped_frames += 1
            self._nudge(t, force=True)
            return
        p.needs_keyframe = False
        if state is not self._video:  # a new epoch: the Router switched the video to this source
            self._end_run()
            self._current, self._video = p, state
            self._follows = False
        if key and self.leader is not None:
            keys = self.leader.reader.keys
            self._stray = keys is None or ts not in keys
            self._follows = self._follows or not self._stray
        if self._run is None or (key and self._run.video_format is not None
                                 and self._run.video_format.extradata != h264.annexb([p.sps, p.pps])):  # type: ignore[list-item]
            if not key:
                return
            self._end_run()
            self._start_run(p, t, data)
            return
        self._write_video(p, t, data, key and self._cut_here(t))

    def _cut_here(self, t: float) -> bool:
        """Whether a keyframe may start a segment: any, unless this variant's keyframes come with the
        leader's; then one the leader has too (not one made for the points on the low rendition
        alone), or any once the segment has grown to twice its length."""
        return not (self._follows and self._stray) or t - self._last_key_t >= 2 * self.segment_seconds

    def _handle_audio(self, p: _Publisher, t: float, data: bytes) -> None:
        if p is self._current and self._run is not None:
            if self.leader is not None and self._run.video is not None:
                self._pace_audio(t, data)
            else:
                self._write_audio(t, data)
            return
        p.audio_lookbehind.append((t, data))  # until this publisher's video starts a run
        if "video" not in p.kinds:  # audio-only publisher: start at once
            if p is not self._current:
                self._end_run()
                self._current, self._video = p, None
            self._start_run(p, t, None)

    def _disk_room(self, p: _Publisher) -> bool:
        """Pause (close the run) when the disk runs low; resume at a keyframe when it has room."""
        room = self.room()
        if room == (not self.paused_for_disk):
            return room
        self.paused_for_disk = not room
        if room:
            log.warning("recorder %s: disk space is back; recording resumes at the next keyframe", self.id)
            for other in self._publishers.values():
                other.needs_keyframe = True
            self._nudge(0.0, force=True)
        else:
            log.error("recorder %s: disk space low; recording paused (the stream goes on)", self.id)
            self._end_run()
        return room

    # --- runs ------------------------------------------------------------------------------------
    def _start_run(self, p: _Publisher, t0: float, keyframe: bytes | None) -> None:
        video = None
        delay = 0.0
        if keyframe is not None:
            sps = h264.parse_sps(p.sps)  # type: ignore[arg-type]
            video = VideoFormat(sps.width, sps.height, h264.annexb([p.sps, p.pps]))  # type: ignore[list-item]
            depth = min(sps.reorder_frames + p.reorder_seen, 16)
            interval = sps.frame_ticks or self._last_video_duration
            self._decode_clock = DecodeClock(depth, interval)
            delay = depth * interval / VIDEO_CLOCK  # room before the keyframe for the decode delay
        self._run = RunMuxer(video, self.audio_profile if "audio" in p.kinds else None, self.segment_seconds)
        self._run_number += 1
        self.stats.runs += 1
        self._run_t0 = t0 - delay
        self._run_front = 0
        self._run_offset = self._timeline_end
        self.run_starts.append((self._run_offset, p.producer_id))
        self._run_pdt = time.time()
        self._run_fragments = 0
        self._run_producer = p.producer_id
        self.places.append(RunPlace(p.producer_id, self._run_t0, self._run_offset, self._run_pdt))
        self.video_format = video or self.video_format
        self.has_audio = self.has_audio or "audio" in p.kinds
        self._held = None
        # Both tracks start at the run's zero: audio that begins later is preceded by silence (the
        # mp4 muxer would otherwise pull its first sample to zero and stretch it).
        self._audio.reset(0)
        if keyframe is not None:
            self._write_video(p, t0, keyframe, True)
        lookbehind, p.audio_lookbehind = list(p.audio_lookbehind), collections.deque(maxlen=AUDIO_LOOKBEHIND)
        for t, data in lookbehind:
            self._write_audio(t, data)
        log.info("recorder %s: run %d from publisher %s at %.3f s", self.id, self._run_number, p.producer_id, self._run_offset)

    def _write_video(self, p: _Publisher, t: float, data: bytes, key: bool) -> None:
        run = self._run
        assert run is not None
        if run.video is None:
            return
        pts = round((t - self._run_t0) * VIDEO_CLOCK)
        dts = self._decode_clock.next(pts)
        if dts is None:
            self._reordered_too_deep(p, pts)
            return
        if self._held is not None:
            held_pts, held_dts, held_data, held_key = self._held
            duration = dts - held_dts
            self._mux_video(run, held_pts, held_dts, duration, held_data, held_key)
            self._last_video_duration = duration
        self._held = (pts, dts, data, key)
        self._run_front = max(self._run_front, pts)
        self.position = self._run_offset + self._run_front / VIDEO_CLOCK
        if key:
            self._last_key_t = t
        else:
            self._nudge(t)
        self._release_audio(t)
        self._collect()

    def _pace_audio(self, t: float, data: bytes) -> None:
        """A variant's sound waits for its picture: the low rendition's video comes later than the
        program's audio (by the transcode), and a segment is cut at a video keyframe, so audio muxed
        ahead would put more sound than picture in each segment. Bounded: without pictures for
        ``AUDIO_PACE_SECONDS`` the sound goes on alone."""
        self._paced.append((t, data))
        if t - self._paced[0][0] > AUDIO_PACE_SECONDS:
            self._write_audio(*self._paced.popleft())

    def _release_audio(self, until: float | None = None) -> None:
        paced = self._paced
        while paced and (until is None or paced[0][0] <= until):
            self._write_audio(*paced.popleft())

    def _mux_video(self, run: RunMuxer, pts: int, dts: int, duration: int, data: bytes, key: bool) -> None:
        run.write_video(pts, dts, duration, data, key)
        self.stats.frames_muxed += 1
        self.stats.video_ticks += duration

    def _reordered_too_deep(self, p: _Publisher, pts: int) -> None:
        """A picture shown before one already decoded: the stream reorders deeper than its SPS says
        (or repeats a timestamp). Close the run and restart at the next keyframe, deep enough."""
        extra = self._decode_clock.shortfall(pts)
        p.reorder_seen = min(p.reorder_seen + extra, 16)
        log.warning(
            "recorder %s: publisher %s reorders deeper than its SPS says; restarting at the next keyframe with "
            "%d more frame(s) of decode delay", self.id, p.producer_id, extra,
        )
        self.stats.reorder_restarts += 1
        self.stats.dropped_frames += 1
        self._end_run()
        p.needs_keyframe = True
        self._nudge(0.0, force=True)

    def _nudge(self, t: float, force: bool = False) -> None:
        """Ask for a keyframe when segments would otherwise grow past their target (or ``force``)."""
        now = time.monotonic()
        if now - self._last_nudge < 1.0:
            return
        if force or t - self._last_key_t >= self.segment_seconds:
            self._last_nudge = now
            self.stats.keyframe_requests += 1
            self.request_keyframe()
            if self.leader is not None and not self._follows:
                self.request_own_keyframe()

    def _write_audio(self, t: float, data: bytes) -> None:
        run = self._run
        assert run is not None
        if run.audio is None:
            return
        pts = round((t - self._run_t0) * AUDIO_RATE)
        if pts < -AUDIO_RATE // 50:  # ends before the run starts
            return
        frames = self._audio.decode(pts, data)
        if frames:
            run.write_audio(frames)
            if run.video is None:
                self.position = self._run_offset + self._audio.next_pts / AUDIO_RATE  # type: ignore[operator]
            self._collect()

    def _end_run(self) -> None:
        run = self._run
        if run is None:
            return
        if self._held is not None:
            held_pts, held_dts, held_data, held_key = self._held
            self._mux_video(run, held_pts, held_dts, self._last_video_duration, held_data, held_key)
            self._held = None
        self._release_audio()
        try:
            run.close()
            self._collect()
        finally:
            self._run = None
        self._run_offset = self._timeline_end

    def _abandon_run(self) -> None:
        """After an unexpected error: keep what is written, start afresh at the next keyframe."""
        run, self._run = self._run, None
        self._held = None
        self._paced.clear()
        if run is not None:
            try:
                run.close()
                self._collect(run)
            except Exception:
                log.exception("recorder %s: closing a failed run", self.id)
        if self._current is not None:
            self._current.needs_keyframe = True

    def _collect(self, run: RunMuxer | None = None) -> None:
        run = run or self._run
        if run is None:
            return
        for fragment in run.fragments():
            if self._run_fragments == 0:
                if self.leader is not None:
                    self._follow_leader()
                self.directory.mkdir(parents=True, exist_ok=True)
                atomic_write(self.directory / self._init_name(), run.init or b"")
            offsets = {tid: round(self._run_offset * run.timescale(tid)) for tid in fragment.tracks}
            shift_tfdt(fragment.data, offsets)
            name = segment_name(len(self._segment_list))
            atomic_write(self.directory / name, bytes(fragment.data))
            segment = Segment(
                uri=name,
                duration=fragment.duration,
                start=self._run_offset + fragment.start,
                map_uri=self._init_name(),
                size=len(fragment.data),
                discontinuity=self._run_fragments == 0 and bool(self._segment_list),
                program_date_time=self._run_pdt if self._run_fragments == 0 else None,
            )
            self._run_fragments += 1
            self._segment_list.append(segment)
            # The next run starts after the later of the tracks: a publisher's audio may go on
            # past its last video frame, and decode times must increase across the runs.
            ends = [(f.base_time + f.duration) / run.timescale(tid) for tid, f in fragment.tracks.items()]
            self._timeline_end = max(self._timeline_end, segment.start + segment.duration,
                                     self._run_offset + max(ends, default=0.0))
            self.size_bytes += segment.size + (len(run.init or b"") if self._run_fragments == 1 else 0)
            self._write_playlist(final=False)
            self.segments = tuple(self._segment_list)
            if self.on_segment is not None:
                try:
                    self.on_segment(self, segment)
                except Exception:
                    log.exception("on_segment callback failed")

    def _follow_leader(self) -> None:
        """Place the current run on the leader's timeline: where the leader's latest run of the same
        publisher starting no later puts this run's start. Without one (or if it would go back in
        time) the run stays where it is, after this variant's previous one."""
        assert self.leader is not None
        place = next((r for r in reversed(self.leader.places)
                      if r.producer_id == self._run_producer and r.t0 <= self._run_t0 + 1e-3), None)
        if place is None:
            return
        offset = place.offset + (self._run_t0 - place.t0)
        if offset >= self._run_offset - 1e-3:
            self._run_offset = offset
            self._run_pdt = place.program_date_time + (self._run_t0 - place.t0)

    def _init_name(self) -> str:
        return init_name(self._run_number)

    def _write_playlist(self, final: bool) -> None:
        if not self._segment_list:
            return
        text = render(
            self._segment_list,
            nominal_duration=self.segment_seconds,
            ended=final,
            playlist_type="VOD" if final else "EVENT",
        )
        atomic_write(self.directory / PLAYLIST, text)
