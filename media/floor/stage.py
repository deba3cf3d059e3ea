"""Stage: what a conference's program carries, the speaker alone or a dialogue with one point.

A point granted the floor publishes over WHIP like the speaker, but its producer does not replace
the speaker's: the stage puts it on the program once its packets flow. Then the picture is the
point's (every subscriber switches at its first keyframe, media.core.router), the sound is one mix
of the hall and the point (media.floor.mixer), switched in when the point's picture is, and the
hall's own playback (the router's ``return`` track) gets the point's voice alone, so the speaker
hears the question without an echo of the hall, and the point's own playback (``to_point``, its
consumers are moved there by the engine) the hall's voice alone. A point whose packets stop for ``STALL`` seconds
goes off the program (the speaker's picture and sound come back at the speaker's keyframe); if they
resume while it is still connected, it goes on again. The server decides who holds the floor; the
stage only follows the producers it is given.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from media.core.router import Router
from media.core.source import SourceStream
from media.floor.mixer import AudioMix

log = logging.getLogger(__name__)

STALL = 1.2  # seconds without a packet from the point before the program falls back to the speaker
WATCH = 0.2  # seconds between looks at the point's packets


class Publisher(Protocol):
    """A producer as the stage sees it (media.ingest.producer.Producer)."""

    id: str
    subject_id: str | None
    sources: dict[str, SourceStream]


FloorListener = Callable[[Publisher, str], None]  # (the point's producer, "live" | "stalled")


class Stage:
    def __init__(self, router: Router) -> None:
        self.router = router
        self.speaker: Publisher | None = None
        self.point: Publisher | None = None
        self.muted = False
        self.on_air = False  # the point is on the program (its packets flow)
        self.mix: AudioMix | None = None
        self.listeners: list[FloorListener] = []
        self.switches = 0  # the point going on or off the program
        self._watch: asyncio.TimerHandle | None = None
        self._audio_after_switch: tuple[SourceStream, SourceStream | None] | None = None  # (video, audio)
        router.switch_listeners.append(self._switched)

    # --- producers -------------------------------------------------------------------------------
    def speaker_on(self, producer: Publisher) -> None:
        """A speaker's publish (the engine has closed the one it replaces)."""
        self.speaker = producer
        if self.on_air and self.mix is not None:
            self.mix.set_input("hall", producer.sources.get("audio"))
            self.router.select(producer.sources.get("audio"), "to_point")
        else:
            self._show(producer)

    def speaker_off(self, producer: Publisher) -> None:
        if self.speaker is producer:
            self.speaker = None
            if self.mix is not None:
                self.mix.set_input("hall", None)

    def point_on(self, producer: Publisher) -> None:
        """The point holding the floor published (the engine has closed a previous point's)."""
        self.point = producer
        self.on_air = False
        if self._watch is None:
            self._watch = asyncio.get_running_loop().call_later(WATCH, self._look)

    def point_off(self, producer: Publisher) -> None:
        if self.point is not producer:
            return
        if self.on_air:
            self._off_air()
        self.point = None
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    def mute(self, muted: bool) -> None:
        """Leave the point's voice out of the mix and the hall's return (the chair's mute)."""
        self.muted = muted
        if self.on_air and self.point is not None:
            voice = None if muted else self.point.sources.get("audio")
            if self.mix is not None:
                self.mix.set_input("point", voice)
            self.router.select(voice, "return")

    def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self.mix is not None:
            self.mix.stop()
            self.mix = None
        if self._switched in self.router.switch_listeners:
            self.router.switch_listeners.remove(self._switched)

    # --- the program -----------------------------------------------------------------------------
    def _look(self) -> None:
        self._watch = asyncio.get_running_loop().call_later(WATCH, self._look)
        point = self.point
        if point is None:
            return
        last = max((s.last_arrival for s in point.sources.values()), default=0.0)
        live = time.time() - last < STALL
        if not live and self.on_air and self.speaker is not None:
            # Not if the speaker's packets stopped too: this loop was held up (its reads are
            # still queued), not the point's link.
            hall = max((s.last_arrival for s in self.speaker.sources.values()), default=0.0)
            live = hall - last < STALL / 2
        if live and not self.on_air:
            self._on_air(point)
        elif not live and self.on_air:
            self._off_air()

    def _on_air(self, point: Publisher) -> None:
        self.on_air = True
        self.switches += 1
        video = point.sources.get("video")
        voice = None if self.muted else point.sources.get("audio")
        hall = self.speaker.sources.get("audio") if self.speaker is not None else None
        # The mix is filed under whose picture it goes with (the recorder's runs are per publisher).
        owner = point if video is not None or self.speaker is None else self.speaker
        if self.mix is None or self.mix.source.producer_id != owner.id:  # else: back before it went off
            self._drop_mix()
            self.mix = AudioMix(self.router, owner.id)
            self.mix.start()
        self.mix.set_input("hall", hall)
        self.mix.set_input("point", voice)
        self._follow_picture(video, self.mix.source)
        self.router.select(voice, "return")
        self.router.select(hall, "to_point")  # the point hears the hall, not itself
        if self._audio_after_switch is None:  # on at once; else "live" when the picture switches
            self._tell(point, "live")

    def _off_air(self) -> None:
        self.on_air = False
        self.switches += 1
        point = self.point
        self.router.select(None, "return")
        self.router.select(None, "to_point")
        if self.speaker is not None:
            self._show(self.speaker)
        if self.speaker is None:
            self._drop_mix()  # (otherwise it is dropped when the speaker's sound comes back)
        if point is not None:
            self._tell(point, "stalled")

    def _show(self, producer: Publisher) -> None:
        self._follow_picture(producer.sources.get("video"), producer.sources.get("audio"))

    def _follow_picture(self, video: SourceStream | None, audio: SourceStream | None) -> None:
        """Select ``video``; ``audio`` follows when the picture switches (at the keyframe), so
        sound and picture change together, for the recording's runs as for the eye."""
        self._audio_after_switch = None
        if video is not None and self.router.active["video"] not in (None, video):
            self._audio_after_switch = (video, audio)
            self.router.select(video)
            return
        if video is not None:
            self.router.select(video)
        if audio is not None:
            self.router.select(audio)
        if self.mix is not None and audio is not self.mix.source:
            self._drop_mix()

    def _switched(self, kind: str, source: SourceStream | None) -> None:
        pending = self._audio_after_switch
        if pending is None or source is not pending[0]:
            return
        self._audio_after_switch = None
        if pending[1] is not None:
            self.router.select(pending[1])
        if self.mix is not None and pending[1] is not self.mix.source:
            self._drop_mix()
        if self.on_air and self.point is not None and source in self.point.sources.values():
            self._tell(self.point, "live")  # every subscriber sees the point from this packet on

    def _drop_mix(self) -> None:
        if self.mix is not None:
            self.mix.stop()
            self.mix = None

    def _tell(self, point: Publisher, state: str) -> None:
        for listener in self.listeners:
            try:
                listener(point, state)
            except Exception:
                log.exception("floor listener failed")

    def stats(self) -> dict:
        return {
            "point": self.point.id if self.point is not None else None,
            "on_air": self.on_air,
            "muted": self.muted,
            "switches": self.switches,
            "mix": self.mix.stats() if self.mix is not None else None,
        }
