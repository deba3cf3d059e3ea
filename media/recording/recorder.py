"""Recorder: one recording of one conference, written by one thread into an HLS directory.

Publisher sessions ("legs": one per WHIP publish, so a reconnect is a new leg) hand their frames to
:class:`Leg` on aiortc's receiver threads; the leg only enqueues (bounded, never blocks). A single
writer thread owns everything else: timing, the current :class:`RunMuxer`, files and playlist.

Timing. aiortc rebases each track's RTP clock to 0 at its first frame, separately for audio and
video (``media.recording.timestamps`` undoes its mistaken wrap corrections). The leg's audio offset (the sender wall clock of audio ts 0 minus that of video ts 0) comes
from the publisher's RTCP sender reports (``media.recording.sync``); until it is known the leg's
frames wait in a small buffer. A run starts at a keyframe; its clock is that keyframe's time, less the decode
delay of a stream with B-frames: frames arrive in decode order carrying presentation times, and their
decode times are derived from the SPS's reorder depth (``timestamps.DecodeClock``). A stream that
reorders deeper than its SPS says starts a new run with the depth it showed.

Switches. A newly bound leg takes over at its first keyframe, the old run is closed, and the new run
continues the timeline behind a discontinuity (same playlist, same directory). The same happens when
the SPS/PPS change mid-stream (a resolution change needs a new init segment).

Disk space. With ``room`` given, the writer asks it (at most once a second) before writing: without
room the run is closed and frames are dropped; with room again, the next keyframe starts a new run.

Crash safety. Segments and the playlist are written to temporary names and renamed; the playlist
is rewritten after each segment, so after ``kill -9`` it names exactly the complete segments.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from media.recording import h264
from media.recording.audio import RATE as AUDIO_RATE
from media.recording.audio import AudioProfile, OpusDecoder
from media.recording.files import PLAYLIST, init_name, segment_name
from media.recording.fmp4 import shift_tfdt
from media.recording.muxer import VIDEO_CLOCK, RunMuxer, VideoFormat
from media.recording.playlist import Segment, atomic_write, render
from media.recording.timestamps import DecodeClock, RtpUnwrapper

log = logging.getLogger(__name__)

WRITER_TICK = 0.05  # seconds the writer sleeps when it has caught up
QUEUE_ITEMS = 4000  # ~50 s of 720p30 + Opus: a stalled disk drops frames instead of memory
PENDING_ITEMS = 600  # frames held per leg until its A/V offset is known
AUDIO_LOOKBEHIND = 100  # audio frames kept while waiting for the first keyframe (2 s)
# aiortc's jitter buffers hold audio for 4 packets and video for one frame before emitting: the
# fallback A/V alignment (no sender report) subtracts these from the arrival times.
AUDIO_BUFFER_DELAY = 0.080
VIDEO_BUFFER_DELAY = 0.033


class Leg:
    """The frame sink of one publisher session: called on aiortc's receiver threads."""

    def __init__(self, recorder: Recorder, number: int) -> None:
        self.recorder = recorder
        self.number = number
        self.first_arrival: dict[str, float] = {}
        self.video_drops = 0
        self.request_keyframe: Callable[[], None] = lambda: None

    def __call__(self, kind: str, codec: str, frame: Any) -> None:
        if kind not in self.first_arrival:
            self.first_arrival[kind] = time.monotonic()
        if not self.recorder.put(("frame", self, kind, codec, frame.timestamp, frame.data, self.video_drops)):
            if kind == "video":
                self.video_drops += 1

    def __repr__(self) -> str:
        return f"Leg({self.number})"


@dataclass
class _LegState:
    leg: Leg
    kinds: frozenset[str] = frozenset()
    bound: bool = False
    bind_order: int = 0
    synced: bool = False
    audio_offset: float = 0.0
    pending: list[tuple] = field(default_factory=list)
    audio_lookbehind: collections.deque = field(
        default_factory=lambda: collections.deque(maxlen=AUDIO_LOOKBEHIND)
    )
    sps: bytes | None = None
    pps: bytes | None = None
    seen_drops: int = 0
    needs_keyframe: bool = False
    warned_codec: bool = False
    reorder_seen: int = 0  # reorder depth the stream showed beyond what its SPS announced
    clocks: dict[str, RtpUnwrapper] = field(
        default_factory=lambda: {"audio": RtpUnwrapper(), "video": RtpUnwrapper()}
    )


@dataclass
class RecorderStats:
    frames_video: int = 0
    frames_audio: int = 0
    dropped_queue: int = 0
    dropped_frames: int = 0
    keyframe_requests: int = 0
    runs: int = 0
    reorder_restarts: int = 0
    dropped_disk: int = 0  # frames not written for want of disk space


class Recorder:
    """Writes one recording; thread-safe entry points: :meth:`new_leg`, :meth:`bind`,
    :meth:`set_sync`, :meth:`leg_closed`, :meth:`stop`, and the read-only :attr:`segments`."""

    def __init__(
        self,
        recording_id: str,
        conference_id: str,
        directory: Path,
        segment_seconds: float = 2.0,
        on_segment: Callable[[Recorder, Segment], None] | None = None,
        audio: AudioProfile = AudioProfile(),
        room: Callable[[], bool] | None = None,
    ) -> None:
        self.id = recording_id
        self.room = room or (lambda: True)
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
        self.finished = False
        self._queue: queue.Queue = queue.Queue()
        self._stopping = False
        self._legs = 0
        self._states: dict[Leg, _LegState] = {}
        self._closed_legs: weakref.WeakSet[Leg] = weakref.WeakSet()
        self._binds = 0
        self._current: _LegState | None = None
        self._candidate: _LegState | None = None
        self._run: RunMuxer | None = None
        self._run_number = -1
        self._run_t0 = 0.0
        self._run_offset = 0.0  # timeline position where the current run starts
        self._run_pdt = 0.0
        self._run_fragments = 0
        self._timeline_end = 0.0
        self._held: tuple[int, int, bytes, bool] | None = None  # last video frame (pts, dts, …) awaiting duration
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
    def put(self, item: tuple) -> bool:
        """Enqueue a frame unless the writer is behind by ``QUEUE_ITEMS`` (or stopped)."""
        if self._stopping or self._queue.qsize() >= QUEUE_ITEMS:
            self.stats.dropped_queue += 1
            return False
        self._queue.put_nowait(item)
        return True

    def new_leg(self) -> Leg:
        self._legs += 1
        return Leg(self, self._legs)

    def bind(self, leg: Leg, kinds: set[str], request_keyframe: Callable[[], None]) -> None:
        """The leg's publisher is live with these kinds (``video`` only if it is H.264)."""
        leg.request_keyframe = request_keyframe
        self._control(("bind", leg, frozenset(kinds)))

    def set_sync(self, leg: Leg, audio_offset: float | None) -> None:
        """Audio-vs-video offset of the leg's clocks in seconds; ``None``: estimate from arrival."""
        self._control(("sync", leg, audio_offset))

    def leg_closed(self, leg: Leg) -> None:
        self._control(("close", leg))

    def stop(self, timeout: float = 30.0) -> None:
        """Close the current run, write the final (VOD) playlist and end the thread. Blocking."""
        self._stopping = True
        self._control(("stop",))
        self._thread.join(timeout)

    @property
    def duration(self) -> float:
        return self._timeline_end

    def _control(self, item: tuple) -> None:
        self._queue.put_nowait(item)  # the queue itself is unbounded: control is never dropped

    # --- writer thread ---------------------------------------------------------------------------
    def _run_writer(self) -> None:
        # Frames arrive ~80 a second; waking for each one cost about as much as writing it (thread
        # switches and GIL hand-overs with the event loop). The writer sleeps WRITER_TICK between
        # batches instead: live HLS is cut into seconds-long segments, so it is never later for it.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                time.sleep(WRITER_TICK)
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
                if item[0] == "frame":
                    self._on_frame(*item[1:])
                elif item[0] == "bind":
                    self._on_bind(item[1], item[2])
                elif item[0] == "sync":
                    self._on_sync(item[1], item[2])
                elif item[0] == "close":
                    self._on_close(item[1])
            except Exception:
                log.exception("recorder %s: %s failed", self.id, item[0])
                if item[0] == "frame":
                    self._abandon_run()

    def _state(self, leg: Leg) -> _LegState:
        st = self._states.get(leg)
        if st is None:
            st = self._states[leg] = _LegState(leg)
        return st

    def _on_bind(self, leg: Leg, kinds: frozenset[str]) -> None:
        if leg in self._closed_legs:
            return
        st = self._state(leg)
        st.kinds = kinds
        st.bound = True
        self._binds += 1
        st.bind_order = self._binds
        if self._current is None or self._current.leg is not leg:
            self._candidate = st
        if "video" in kinds:
            leg.request_keyframe()

    def _on_sync(self, leg: Leg, offset: float | None) -> None:
        if leg in self._closed_legs:
            return
        st = self._state(leg)
        if st.synced:
            return
        source = "sender reports"
        if offset is None:
            a, v = leg.first_arrival.get("audio"), leg.first_arrival.get("video")
            offset = (a - AUDIO_BUFFER_DELAY) - (v - VIDEO_BUFFER_DELAY) if a and v else 0.0
            source = "arrival times"
        log.info("recorder %s: %s audio offset %+.3f s (%s)", self.id, leg, offset, source)
        st.audio_offset = offset
        st.synced = True
        pending, st.pending = st.pending, []
        for frame in pending:
            self._handle(st, *frame)

    def _on_close(self, leg: Leg) -> None:
        self._closed_legs.add(leg)
        st = self._states.pop(leg, None)
        if st is None:
            return
        if st is self._current:
            self._end_run()
            self._current = None
        if st is self._candidate:
            self._candidate = None
        if self._current is None and self._candidate is None:
            # Another publisher still live (e.g. a point that had the floor): record it again.
            others = [o for o in self._states.values() if o.bound]
            if others:
                self._candidate = max(others, key=lambda o: o.bind_order)
                if "video" in self._candidate.kinds:
                    self._candidate.leg.request_keyframe()

    def _on_frame(self, leg: Leg, kind: str, codec: str, ts: int, data: bytes, drops: int) -> None:
        st = self._states.get(leg)
        if st is None:
            if leg in self._closed_legs:
                return  # stragglers from a receiver that is shutting down
            st = self._state(leg)
        if not st.synced:
            if len(st.pending) >= PENDING_ITEMS:
                st.pending.pop(0)
                st.needs_keyframe = True
            st.pending.append((kind, codec, ts, data, drops))
            return
        self._handle(st, kind, codec, ts, data, drops)

    def _handle(self, st: _LegState, kind: str, codec: str, ts: int, data: bytes, drops: int) -> None:
        if not st.bound:
            return
        if kind in st.clocks:
            ts = st.clocks[kind](ts)
        if not self._disk_room(st):
            self.stats.dropped_disk += 1
            return
        if kind == "video":
            if "video" not in st.kinds:
                return
            if codec != "video/h264":
                if not st.warned_codec:
                    log.warning("recorder %s: %s video is not recorded (H.264 only)", self.id, codec)
                    st.warned_codec = True
                return
            self.stats.frames_video += 1
            self._handle_video(st, ts / VIDEO_CLOCK, data, drops)
        elif kind == "audio" and "audio" in st.kinds and codec == "audio/opus":
            self.stats.frames_audio += 1
            self._handle_audio(st, st.audio_offset + ts / AUDIO_RATE, data)

    def _handle_video(self, st: _LegState, t: float, data: bytes, drops: int) -> None:
        au = h264.inspect(data)
        if au.sps is not None:
            st.sps = au.sps
        if au.pps is not None:
            st.pps = au.pps
        if drops != st.seen_drops:
            st.seen_drops = drops
            st.needs_keyframe = True
        key = au.is_idr and st.sps is not None and st.pps is not None
        if key and (au.sps is None or au.pps is None):
            data = h264.annexb([st.sps, st.pps]) + data  # type: ignore[list-item]
        if st.needs_keyframe and not key:
            self.stats.dropped_frames += 1
            self._nudge(st, t, force=True)
            return
        st.needs_keyframe = False
        if st is self._candidate:
            if not key:
                return
            self._end_run()
            self._current, self._candidate = st, None
            self._start_run(st, t, data)
            return
        if st is not self._current:
            return
        if self._run is None or (key and self._run.video_format is not None
                                 and self._run.video_format.extradata != h264.annexb([st.sps, st.pps])):  # type: ignore[list-item]
            if not key:
                return
            self._end_run()
            self._start_run(st, t, data)
            return
        self._write_video(st, t, data, key)

    def _handle_audio(self, st: _LegState, t: float, data: bytes) -> None:
        if st is self._current and self._run is not None:
            self._write_audio(t, data)
        elif st is self._candidate or st is self._current:
            st.audio_lookbehind.append((t, data))
            if "video" not in st.kinds:  # audio-only leg: start at once
                if st is self._candidate:
                    self._end_run()
                    self._current, self._candidate = st, None
                self._start_run(st, t, None)

    def _disk_room(self, st: _LegState) -> bool:
        """Pause (close the run) when the disk runs low; resume at a keyframe when it has room."""
        room = self.room()
        if room == (not self.paused_for_disk):
            return room
        self.paused_for_disk = not room
        if room:
            log.warning("recorder %s: disk space is back; recording resumes at the next keyframe", self.id)
            for other in self._states.values():
                other.needs_keyframe = True
            self._nudge(st, 0.0, force=True)
        else:
            log.error("recorder %s: disk space low; recording paused (the stream goes on)", self.id)
            self._end_run()
        return room

    # --- runs ------------------------------------------------------------------------------------
    def _start_run(self, st: _LegState, t0: float, keyframe: bytes | None) -> None:
        video = None
        delay = 0.0
        if keyframe is not None:
            sps = h264.parse_sps(st.sps)  # type: ignore[arg-type]
            video = VideoFormat(sps.width, sps.height, h264.annexb([st.sps, st.pps]))  # type: ignore[list-item]
            depth = min(sps.reorder_frames + st.reorder_seen, 16)
            interval = sps.frame_ticks or self._last_video_duration
            self._decode_clock = DecodeClock(depth, interval)
            delay = depth * interval / VIDEO_CLOCK  # room before the keyframe for the decode delay
        self._run = RunMuxer(video, self.audio_profile if "audio" in st.kinds else None, self.segment_seconds)
        self._run_number += 1
        self.stats.runs += 1
        self._run_t0 = t0 - delay
        self._run_front = 0
        self._run_offset = self._timeline_end
        self._run_pdt = time.time()
        self._run_fragments = 0
        self._held = None
        # Both tracks start at the run's zero: audio that begins later is preceded by silence (the
        # mp4 muxer would otherwise pull its first sample to zero and stretch it).
        self._audio.reset(0)
        if keyframe is not None:
            self._write_video(st, t0, keyframe, True)
        lookbehind, st.audio_lookbehind = list(st.audio_lookbehind), collections.deque(maxlen=AUDIO_LOOKBEHIND)
        for t, data in lookbehind:
            self._write_audio(t, data)
        log.info("recorder %s: run %d from %s at %.3f s", self.id, self._run_number, st.leg, self._run_offset)

    def _write_video(self, st: _LegState, t: float, data: bytes, key: bool) -> None:
        run = self._run
        assert run is not None
        if run.video is None:
            return
        pts = round((t - self._run_t0) * VIDEO_CLOCK)
        dts = self._decode_clock.next(pts)
        if dts is None:
            self._reordered_too_deep(st, pts)
            return
        if self._held is not None:
            held_pts, held_dts, held_data, held_key = self._held
            duration = dts - held_dts
            run.write_video(held_pts, held_dts, duration, held_data, held_key)
            self._last_video_duration = duration
        self._held = (pts, dts, data, key)
        self._run_front = max(self._run_front, pts)
        self.position = self._run_offset + self._run_front / VIDEO_CLOCK
        if key:
            self._last_key_t = t
        else:
            self._nudge(st, t)
        self._collect()

    def _reordered_too_deep(self, st: _LegState, pts: int) -> None:
        """A picture shown before one already decoded: the stream reorders deeper than its SPS says
        (or repeats a timestamp). Close the run and restart at the next keyframe, deep enough."""
        extra = self._decode_clock.shortfall(pts)
        st.reorder_seen = min(st.reorder_seen + extra, 16)
        log.warning(
            "recorder %s: %s reorders deeper than its SPS says; restarting at the next keyframe with "
            "%d more frame(s) of decode delay", self.id, st.leg, extra,
        )
        self.stats.reorder_restarts += 1
        self.stats.dropped_frames += 1
        self._end_run()
        st.needs_keyframe = True
        self._nudge(st, 0.0, force=True)

    def _nudge(self, st: _LegState, t: float, force: bool = False) -> None:
        """Ask the publisher for a keyframe when segments would otherwise grow past their target."""
        now = time.monotonic()
        if now - self._last_nudge < 1.0:
            return
        if force or t - self._last_key_t >= self.segment_seconds:
            self._last_nudge = now
            self.stats.keyframe_requests += 1
            st.leg.request_keyframe()

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
            run.write_video(held_pts, held_dts, self._last_video_duration, held_data, held_key)
            self._held = None
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
            self._timeline_end = segment.start + segment.duration
            self.size_bytes += segment.size + (len(run.init or b"") if self._run_fragments == 1 else 0)
            self._write_playlist(final=False)
            self.segments = tuple(self._segment_list)
            if self.on_segment is not None:
                try:
                    self.on_segment(self, segment)
                except Exception:
                    log.exception("on_segment callback failed")

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
