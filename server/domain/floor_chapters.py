"""A chapter in the conference's recording where a point takes the floor, named after the point and
its subject, so a replay can jump to each intervention.

Marked when the point's stream goes live on this node (``floor.media`` "live": the program switches
to it at its first keyframe), where the recording's run of the point's stream begins (the recorder
lists its runs' starts; its newest position if that run does not show within ``RUN_WAIT``); once
per holding, and nothing when the conference is not being recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.domain.floor_state import Holder
from server.domain.recordings import add_chapter

log = logging.getLogger(__name__)

MAX_TITLE = 500  # recording_chapters.title
RUN_WAIT = 5.0  # seconds to wait for the recorder to start the point's run


def chapter_title(holder: Holder) -> str:
    title = f"{holder.point_name}: {holder.subject}" if holder.subject else holder.point_name
    return title[:MAX_TITLE]


class FloorChapters:
    def __init__(
        self, floor: Any, recordings: Any, sessionmaker: async_sessionmaker[AsyncSession], node_id: str | None
    ) -> None:
        self.floor = floor  # FloorService: ``state(conference)`` names the holder
        self.recordings = recordings  # RecordingService: ``manager.active(conference)`` is the live recorder
        self.sessionmaker = sessionmaker
        self.node_id = node_id
        self._marked: set[str] = set()  # grant ids already given their chapter
        self._tasks: set[asyncio.Task] = set()

    def on_bus_event(self, event: dict[str, Any]) -> None:
        """A bus handler: the floor point's stream went live on this node."""
        if event.get("type") != "floor.media" or event.get("state") != "live":
            return
        if event.get("origin") not in (None, self.node_id):  # the node recording it marks it
            return
        conference_id = str(event.get("topic", "")).removeprefix("conference.")
        task = asyncio.ensure_future(self._mark_live(conference_id, event.get("point_id"), event.get("session_id")))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _mark_live(self, conference_id: str, point_id: Any, session_id: Any) -> None:
        holder = (await self.floor.state(conference_id)).current
        if holder is None or holder.point_id != point_id or holder.grant_id in self._marked:
            return
        self._marked.add(holder.grant_id)
        await self.mark(conference_id, holder, session_id)

    @staticmethod
    async def _run_start(recorder: Any, session_id: Any) -> float:
        """Where the recording's run of the point's stream (producer ``session_id``) begins."""
        deadline = time.monotonic() + RUN_WAIT
        while time.monotonic() < deadline:
            for at, producer_id in reversed(getattr(recorder, "run_starts", ())):
                if producer_id == session_id:
                    return float(at)
            await asyncio.sleep(0.1)
        return float(recorder.position)

    async def mark(self, conference_id: str, holder: Holder, session_id: Any = None) -> str | None:
        """Add the chapter to the live recording; its id, or None when nothing is recorded."""
        recorder = self.recordings.manager.active(conference_id)
        if recorder is None:
            return None
        at = await self._run_start(recorder, session_id)
        try:
            async with self.sessionmaker() as db:
                chapter = await add_chapter(db, recorder.id, chapter_title(holder), at)
                await db.commit()
                return chapter.id
        except Exception:  # e.g. the recording's row not written yet: the floor goes on without it
            log.exception("conference %s: no recording chapter for the floor of %s", conference_id, holder.point_name)
            return None

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
