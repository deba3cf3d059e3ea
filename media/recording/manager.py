"""RecordingManager: one running :class:`Recorder` per live conference, driven by the media engine.

Hooks into :class:`media.engine.MediaEngine` through ``on_producer``: the first recordable publisher
of a conference starts its recording, whose reader joins the conference's Router (the recorder then
gets what the points get, switches included); every recordable publisher is announced to the recorder
with its kinds, then its clocks (``media.recording.sync``), and its leaving is passed on. A recording
outlives its publishers: a reconnect within ``idle_seconds`` continues it behind a discontinuity;
after that (or on :meth:`stop`) it is finalised. Without disk room (``room``) no recording starts (the
publish goes on unrecorded) and a running one pauses. All methods run on the event loop; the server layer
is told about lifecycle changes through the ``on_*`` callbacks, also on the loop.

With ``low_variant`` each recording has a second :class:`Recorder` beside it, in ``low/``: a reader
of the Router's low track (the low rendition's video, the program's audio), which keeps the
conference's transcoder running while the recording lasts; it follows the main recorder's timeline
and cuts, and is told of every publisher as the main one is. The multivariant playlist naming both
(media.recording.variants) is written by the main recorder's thread when a variant appears or
changes size, and once more with the final figures when the recording ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from media.core.router import Router
from media.recording.audio import AudioProfile
from media.recording.recorder import Recorder
from media.recording.playlist import atomic_write
from media.recording.sync import SourceClock, arrival_clocks, sender_clocks
from media.recording.files import LOW_DIRECTORY, MASTER
from media.recording.variants import variants_of
from media.recording.variants import render as render_master

log = logging.getLogger(__name__)

SYNC_WAIT = 3.0  # seconds after the first packet to wait for sender reports before estimating
SYNC_GIVE_UP = 30.0  # seconds after which a publisher that sent nothing is aligned by arrival anyway
RECORDABLE = {"audio": "audio/opus", "video": "video/h264"}

RecorderCallback = Callable[[Recorder], None]


@dataclass
class _Entry:
    recorder: Recorder
    router: Router
    publishers: set[str] = field(default_factory=set)  # producer ids recorded and still open
    idle: asyncio.TimerHandle | None = None
    tasks: set[asyncio.Task] = field(default_factory=set)
    master_shape: list[tuple[str, int, int]] | None = None  # the variants master.m3u8 names now

    @property
    def recorders(self) -> list[Recorder]:
        """The main recorder and its low variant's, if any: each is told of every publisher."""
        return [self.recorder] if self.recorder.low is None else [self.recorder, self.recorder.low]


def recordable_kinds(producer: Any) -> set[str]:
    """Kinds of a producer the recorder can take: H.264 video, Opus audio."""
    return {kind for kind, source in producer.sources.items() if RECORDABLE.get(kind) == source.codec}


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
        low_variant: bool = False,
    ) -> None:
        self.root = root
        self.low_variant = low_variant
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
        return entry.recorder if entry is not None else None

    def get(self, recording_id: str) -> Recorder | None:
        for entry in self._entries.values():
            if entry.recorder.id == recording_id:
                return entry.recorder
        return None

    def recorders(self) -> list[Recorder]:
        return [e.recorder for e in self._entries.values()]

    def directory(self, conference_id: str, recording_id: str) -> Path:
        return self.root / conference_id / recording_id

    # --- media engine hook -----------------------------------------------------------------------
    def on_producer(self, conference_id: str, producer: Any, opened: bool) -> None:
        entry = self._entries.get(conference_id)
        if not opened:
            if entry is not None and producer.id in entry.publishers:
                entry.publishers.discard(producer.id)
                # A publisher gone before its sender reports came: what it sent is placed by arrival
                # (the recorder ignores this once its clocks are set), not dropped with it.
                kinds = recordable_kinds(producer)
                clocks = arrival_clocks({kind: producer.sources[kind] for kind in kinds})
                for recorder in entry.recorders:
                    recorder.set_clocks(producer.id, clocks)
                    recorder.publisher_closed(producer.id)
                if not entry.publishers:
                    self._arm_idle(conference_id, entry)
            return
        kinds = recordable_kinds(producer)
        skipped = {kind: source.codec for kind, source in producer.sources.items() if kind not in kinds}
        if skipped:
            log.warning("conference %s: not recorded (H.264 and Opus only): %s", conference_id, skipped)
        if not kinds:
            return
        if entry is None:
            entry = self._start(conference_id, producer.router)  # the engine's one router of the conference
            if entry is None:
                return
        entry.publishers.add(producer.id)
        if entry.idle is not None:
            entry.idle.cancel()
            entry.idle = None
        for recorder in entry.recorders:
            recorder.add_publisher(producer.id, kinds)
        task = asyncio.ensure_future(self._sync(entry, producer, kinds))
        entry.tasks.add(task)
        task.add_done_callback(entry.tasks.discard)

    def _start(self, conference_id: str, router: Router) -> _Entry | None:
        loop = self._loop = asyncio.get_running_loop()
        if not self.room():
            self.refused += 1
            log.error("conference %s: not recorded, the disk is below its free-space floor", conference_id)
            return None
        recording_id = self.new_id()
        entry: _Entry

        def request_keyframe(track: str = "video") -> None:  # on the writer thread: merged with the points'
            if not loop.is_closed():
                loop.call_soon_threadsafe(lambda: entry.router.request_keyframe(track=track))

        recorder = Recorder(
            recording_id,
            conference_id,
            self.directory(conference_id, recording_id),
            self.segment_seconds,
            on_segment=self._segment_from_thread,
            audio=self.audio,
            room=self.room,
            request_keyframe=request_keyframe,
        )
        entry = self._entries[conference_id] = _Entry(recorder, router)
        router.add_reader(recorder.reader)
        if self.low_variant:
            recorder.low = Recorder(
                recording_id,
                conference_id,
                recorder.directory / LOW_DIRECTORY,
                self.segment_seconds,
                audio=self.audio,
                room=self.room,
                request_keyframe=request_keyframe,  # the program's: the transcoder makes one where it has one
                leader=recorder,
                request_own_keyframe=lambda: request_keyframe("low"),
            )
            router.add_reader(recorder.low.reader, track="low")  # counts as demand: the transcoder starts
        self.on_started(recorder)
        return entry

    async def _sync(self, entry: _Entry, producer: Any, kinds: set[str]) -> None:
        """Tie the publisher's kinds to its sender's wall clock, or failing that to arrival (the same
        clocks for every variant: the low rendition keeps its source's RTP timestamps)."""

        def set_clocks(clocks: dict[str, SourceClock]) -> None:
            for recorder in entry.recorders:
                recorder.set_clocks(producer.id, clocks)

        recorder = entry.recorder
        sources = {kind: producer.sources[kind] for kind in kinds}
        if len(sources) == 1:
            set_clocks({})  # nothing to align
            return
        loop = asyncio.get_running_loop()
        give_up = loop.time() + SYNC_GIVE_UP
        deadline: float | None = None
        if getattr(producer, "role", "speaker") == "point":
            # A point on the floor is heard through the dialogue mix, which is placed by this
            # machine's clock: its picture is placed by arrival, on the same clock.
            while not producer.closed and loop.time() < give_up:
                if all(source.packets for source in sources.values()):
                    break
                await asyncio.sleep(0.1)
            set_clocks(arrival_clocks(sources))
            return
        while not producer.closed and loop.time() < give_up:
            clocks = sender_clocks(sources)
            if clocks is not None:
                set_clocks(clocks)
                return
            if deadline is None and any(source.packets for source in sources.values()):
                deadline = loop.time() + SYNC_WAIT
            if deadline is not None and loop.time() > deadline:
                break
            await asyncio.sleep(0.1)
        log.info("recording %s: no sender reports, A/V aligned by arrival time", recorder.id)
        set_clocks(arrival_clocks(sources))

    def _segment_from_thread(self, recorder: Recorder, _segment: object) -> None:
        entry = self._entries.get(recorder.conference_id)
        if entry is not None and entry.recorder is recorder:
            self._write_master(entry)
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.on_segment, recorder)

    @staticmethod
    def _write_master(entry: _Entry, final: bool = False) -> None:
        """``master.m3u8`` when the variants it names change (a variant's first segment, a new
        picture size), and ``final``ly with the whole recording's figures. On the main writer's
        thread while recording, so two writes never race."""
        variants = variants_of(entry.recorder)
        shape = [(v.uri, v.width, v.height) for v in variants]
        if variants and (final or shape != entry.master_shape):
            entry.master_shape = shape
            atomic_write(entry.recorder.directory / MASTER, render_master(variants))

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
        for recorder in entry.recorders:
            entry.router.remove_reader(recorder.reader)  # the low one's: the transcoder may stop
        await asyncio.gather(*(asyncio.to_thread(recorder.stop) for recorder in entry.recorders))
        await asyncio.to_thread(self._write_master, entry, True)
        self.on_finished(entry.recorder)
        return entry.recorder

    async def shutdown(self) -> None:
        for conference_id in list(self._entries):
            await self.stop(conference_id)
