"""RecordingManager: one running :class:`Recorder` per live conference, driven by the media engine.

Hooks into :class:`media.engine.MediaEngine`: ``frame_sink_factory`` gives each WHIP publish a
:class:`Leg` of the conference's recorder (creating the recorder on the first publish), and
``on_producer`` binds the leg when the publisher is live and releases it when it leaves. A recording
outlives its publishers: a reconnect within ``idle_seconds`` continues it behind a discontinuity;
after that (or on :meth:`stop`) it is finalised. Without disk room (``room``) no recording starts (the
publish goes on unrecorded) and a running one pauses. All methods run on the event loop; the server layer
is told about lifecycle changes through the ``on_*`` callbacks, also on the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from media.recording.audio import AudioProfile
from media.recording.recorder import Leg, Recorder
from media.recording.sync import audio_offset

log = logging.getLogger(__name__)

SYNC_WAIT = 3.0  # seconds after the first frame to wait for sender reports before estimating
SYNC_MAX_OFFSET = 5.0  # a larger SR-derived offset is implausible: estimate instead

RecorderCallback = Callable[[Recorder], None]


@dataclass
class _Entry:
    recorder: Recorder
    open_legs: set[Leg] = field(default_factory=set)
    announced: bool = False
    idle: asyncio.TimerHandle | None = None
    tasks: set[asyncio.Task] = field(default_factory=set)


def recordable_kinds(producer: Any) -> set[str]:
    """Kinds of a producer the recorder can take: H.264 video, Opus audio."""
    wanted = {"audio": "audio/opus", "video": "video/h264"}
    return {kind for kind, source in producer.sources.items() if wanted.get(kind) == source.codec}


class RecordingManager:
    def __init__(
        self,
        root: Path,
        new_id: Callable[[], str],
        segment_seconds: float = 2.0,
        idle_seconds: float = 120.0,
        on_started: RecorderCallback | None = None,
        on_segment: RecorderCallback | None = None,
        on_finished: RecorderCallback | None = None,
        audio: AudioProfile = AudioProfile(),
        room: Callable[[], bool] | None = None,
    ) -> None:
        self.root = root
        self.room = room or (lambda: True)
        self.refused = 0  # publishes not recorded for want of disk space
        self.audio = audio
        self.new_id = new_id
        self.segment_seconds = segment_seconds
        self.idle_seconds = idle_seconds
        self.on_started = on_started or (lambda r: None)
        self.on_segment = on_segment or (lambda r: None)
        self.on_finished = on_finished or (lambda r: None)
        self._entries: dict[str, _Entry] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- queries ---------------------------------------------------------------------------------
    def active(self, conference_id: str) -> Recorder | None:
        entry = self._entries.get(conference_id)
        return entry.recorder if entry is not None and entry.announced else None

    def get(self, recording_id: str) -> Recorder | None:
        for entry in self._entries.values():
            if entry.recorder.id == recording_id and entry.announced:
                return entry.recorder
        return None

    def recorders(self) -> list[Recorder]:
        return [e.recorder for e in self._entries.values() if e.announced]

    def directory(self, conference_id: str, recording_id: str) -> Path:
        return self.root / conference_id / recording_id

    # --- media engine hooks ----------------------------------------------------------------------
    def sink_factory(self, conference_id: str) -> Leg | None:
        self._loop = asyncio.get_running_loop()
        entry = self._entries.get(conference_id)
        if entry is None:
            if not self.room():
                self.refused += 1
                log.error("conference %s: not recorded, the disk is below its free-space floor", conference_id)
                return None
            recording_id = self.new_id()
            recorder = Recorder(
                recording_id,
                conference_id,
                self.directory(conference_id, recording_id),
                self.segment_seconds,
                on_segment=self._segment_from_thread,
                audio=self.audio,
                room=self.room,
            )
            entry = self._entries[conference_id] = _Entry(recorder)
        if not entry.open_legs:
            # Restart the idle clock: the recording must not close while this publish is being
            # answered, and must close anyway if the publish never goes live.
            self._arm_idle(conference_id, entry)
        return entry.recorder.new_leg()

    def on_producer(self, conference_id: str, producer: Any, opened: bool) -> None:
        entry = self._entries.get(conference_id)
        leg = getattr(producer, "frame_sink", None)
        if entry is None or not isinstance(leg, Leg) or leg.recorder is not entry.recorder:
            return
        recorder = entry.recorder
        if not opened:
            entry.open_legs.discard(leg)
            recorder.leg_closed(leg)
            if not entry.open_legs:
                self._arm_idle(conference_id, entry)
            return
        kinds = recordable_kinds(producer)
        if not kinds:
            log.warning("conference %s: nothing recordable (%s)", conference_id, list(producer.sources))
            return
        loop = asyncio.get_running_loop()

        def request_keyframe() -> None:  # called on the writer thread
            loop.call_soon_threadsafe(lambda: None if producer.closed else producer.request_keyframe())

        entry.open_legs.add(leg)
        if entry.idle is not None:
            entry.idle.cancel()
            entry.idle = None
        recorder.bind(leg, kinds, request_keyframe)
        task = asyncio.ensure_future(self._sync(recorder, leg, producer))
        entry.tasks.add(task)
        task.add_done_callback(entry.tasks.discard)
        if not entry.announced:
            entry.announced = True
            self.on_started(recorder)

    async def _sync(self, recorder: Recorder, leg: Leg, producer: Any) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + 30.0
        first_frame_deadline: float | None = None
        while not producer.closed and loop.time() < give_up:
            offset = audio_offset(producer)
            if offset is not None and abs(offset) < SYNC_MAX_OFFSET:
                recorder.set_sync(leg, offset)
                return
            if first_frame_deadline is None and leg.first_arrival:
                first_frame_deadline = loop.time() + SYNC_WAIT
            if first_frame_deadline is not None and loop.time() > first_frame_deadline:
                break
            await asyncio.sleep(0.1)
        log.info("recording %s: no sender reports, A/V aligned by arrival time", recorder.id)
        recorder.set_sync(leg, None)

    def _segment_from_thread(self, recorder: Recorder, _segment: object) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.on_segment, recorder)

    # --- lifecycle -------------------------------------------------------------------------------
    def _arm_idle(self, conference_id: str, entry: _Entry) -> None:
        if entry.idle is not None:
            entry.idle.cancel()
        loop = asyncio.get_running_loop()
        entry.idle = loop.call_later(
            self.idle_seconds, lambda: asyncio.ensure_future(self.stop(conference_id))
        )

    async def stop(self, conference_id: str) -> Recorder | None:
        """Finalise the conference's recording (VOD playlist); later publishes start a new one."""
        entry = self._entries.pop(conference_id, None)
        if entry is None:
            return None
        if entry.idle is not None:
            entry.idle.cancel()
        for task in list(entry.tasks):
            task.cancel()
        await asyncio.to_thread(entry.recorder.stop)
        if entry.announced:
            self.on_finished(entry.recorder)
        return entry.recorder

    async def shutdown(self) -> None:
        for conference_id in list(self._entries):
            await self.stop(conference_id)
