"""RenditionKeeper: where a conference's low rendition comes from, and a transcoder only when needed.

The low rendition is the program publisher's own when it sends one (the speaker page's second video
track, media.ingest.producer): whenever the program's picture is selected, the keeper selects that
publisher's low source into the router's ``low`` track (switching at its keyframe) and stops a
transcoder it ran, so no server transcode runs. A publisher that sends one video track (OBS, a point
holding the floor) gets the server's transcoder (media.renditions.transcoder), and only while some
point or reader is on the low rendition: points are counted where they live (each process's router
counts its group; the workers report theirs, media.sharding.pool); the first one starts it, and it
stops ``idle_seconds`` after the last one left, so a point that goes up and comes back down does not
restart it each time. Runs in the ingest process only (the workers mirror its selections).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Literal

from media.core.router import Router
from media.core.source import SourceStream
from media.renditions.transcoder import Transcoder

log = logging.getLogger(__name__)

LowMaker = Literal["publisher", "transcode", "none"]


class RenditionKeeper:
    def __init__(
        self, router_of: Callable[[str], Router], demand_of: Callable[[str], int],
        low_of: Callable[[SourceStream], SourceStream | None], idle_seconds: float = 30.0,
        size: tuple[int, int] = (640, 360), bitrate: int = 450_000,
    ) -> None:
        """``low_of(picture)``: the low rendition its publisher sends beside ``picture``, if any."""
        self.router_of = router_of
        self.demand_of = demand_of
        self.low_of = low_of
        self.idle_seconds = idle_seconds
        self.size, self.bitrate = size, bitrate
        self.transcoders: dict[str, Transcoder] = {}
        self._idle: dict[str, asyncio.TimerHandle] = {}
        self.started = 0

    def _published_low(self, conference_id: str) -> SourceStream | None:
        """The low rendition sent by the publisher of the program's picture (the next one, during a switch)."""
        router = self.router_of(conference_id)
        picture = router.pending["video"] or router.active["video"]
        return self.low_of(picture) if picture is not None else None

    def selected(self, conference_id: str, track: str, source: SourceStream | None) -> None:
        """A selection on the conference's router (``Router.selection_listeners``): a new program
        picture with its own low rendition takes the low track; one without needs the transcoder."""
        if track != "video" or source is None:
            return
        low = self.low_of(source)
        if low is None:
            self.changed(conference_id)
            return
        if conference_id in self.transcoders:
            self._stop(conference_id)
        self.router_of(conference_id).select(low, "low")

    def changed(self, conference_id: str, *_: Any) -> None:
        """The number of points on a conference's low rendition changed somewhere."""
        demand = self.demand_of(conference_id)
        running = self.transcoders.get(conference_id)
        if demand > 0:
            timer = self._idle.pop(conference_id, None)
            if timer is not None:
                timer.cancel()
            if running is None and self._published_low(conference_id) is None:
                transcoder = Transcoder(self.router_of(conference_id), *self.size, bitrate=self.bitrate)
                self.transcoders[conference_id] = transcoder
                transcoder.start()
                self.started += 1
                log.info("conference %s: low rendition transcoder started", conference_id)
        elif running is not None and conference_id not in self._idle:
            loop = asyncio.get_running_loop()
            self._idle[conference_id] = loop.call_later(self.idle_seconds, self._stop, conference_id)

    def made_by(self, conference_id: str) -> LowMaker:
        """How the conference's low rendition is made now (its router exists): by the program's
        publisher, by the server's transcoder, or not at all (nobody needs it and the publisher
        sends none)."""
        if conference_id in self.transcoders:
            return "transcode"
        if self._published_low(conference_id) is not None:
            return "publisher"
        return "none"

    def _stop(self, conference_id: str) -> None:
        timer = self._idle.pop(conference_id, None)
        if timer is not None:
            timer.cancel()
        transcoder = self.transcoders.pop(conference_id, None)
        if transcoder is not None:
            transcoder.stop()
            log.info("conference %s: low rendition transcoder stopped", conference_id)

    def stats(self) -> dict:
        return {conf: t.stats() for conf, t in self.transcoders.items()}

    def close(self) -> None:
        for conference_id in list(self.transcoders):
            self._stop(conference_id)
        for timer in self._idle.values():
            timer.cancel()
        self._idle.clear()
