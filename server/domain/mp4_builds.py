"""MP4 downloads made in the background: a request never waits while hours of video are remuxed.

The first request for a recording's MP4 starts its remux on a thread and is answered at once (202,
with the progress); later requests see the progress, then the finished file. One remux runs at a
time per process, so several downloads asked at once do not take the relay's cores. A failed remux
is reported once and forgotten, so the next request tries again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from media.recording.remux import remux_to_mp4

log = logging.getLogger(__name__)

CONCURRENT_REMUXES = 1


class RemuxStopped(Exception):
    """The server is stopping: a remux under way gives up (its temporary file is removed)."""


@dataclass
class Mp4Build:
    """Where one recording's MP4 stands: ``ready`` (``path`` exists), ``preparing`` (``progress`` 0-1)
    or ``failed`` (``error`` says why)."""

    status: str
    path: Path
    progress: float = 0.0
    error: str = ""


class Mp4Builds:
    """The background remuxes of this process, one per recording at most."""

    def __init__(self) -> None:
        self._builds: dict[str, Mp4Build] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(CONCURRENT_REMUXES)
        self._stopping = False

    def ensure(self, recording_id: str, playlist: Path, target: Path) -> Mp4Build:
        """The MP4's state, starting its remux if it is neither made nor being made."""
        if target.exists():
            return Mp4Build("ready", target, 1.0)
        build = self._builds.get(recording_id)
        if build is not None and build.status == "failed":
            del self._builds[recording_id]
            return build
        if build is None:
            build = self._builds[recording_id] = Mp4Build("preparing", target)
            self._tasks[recording_id] = asyncio.ensure_future(self._make(recording_id, build, playlist))
        return build

    async def _make(self, recording_id: str, build: Mp4Build, playlist: Path) -> None:
        loop = asyncio.get_running_loop()

        def progress(fraction: float) -> None:  # on the remux's thread
            if self._stopping:
                raise RemuxStopped
            loop.call_soon_threadsafe(setattr, build, "progress", fraction)

        try:
            async with self._slots:
                await asyncio.to_thread(remux_to_mp4, playlist, build.path, progress)
        except RemuxStopped:
            build.status, build.error = "failed", "the server is stopping: ask again once it is back"
        except Exception as exc:
            log.exception("recording %s: the MP4 could not be made", recording_id)
            build.status, build.error = "failed", f"the MP4 could not be made: {exc}"
        else:
            del self._builds[recording_id]  # the file itself now says it is ready
        finally:
            self._tasks.pop(recording_id, None)

    async def shutdown(self) -> None:
        """Stop the remuxes under way at their next progress call (a thread cannot be cancelled), and
        wait for them, bounded: a stopping server does not wait for hours of video to be remuxed."""
        self._stopping = True
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=10)
