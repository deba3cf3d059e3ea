"""A finished recording as a conference event (``recording.finished``), for webhooks and pages.

The recording manager calls one ``on_finished`` per recording it closes (the idle timeout, a
conference's end, a stop, shutdown); this hook goes beside the recording service's own, which
writes the database row.
"""

from __future__ import annotations

import asyncio
from typing import Any

from server.events.bus import EventBus, conference_topic

EVENT = "recording.finished"


def publish_recording_events(manager: Any, bus: EventBus) -> None:
    """Chain ``manager.on_finished`` (RecordingManager) with the event; an empty recording (no
    segment: the service deletes it) is not announced."""
    before = manager.on_finished

    def on_finished(recorder: Any) -> None:
        before(recorder)
        if not recorder.segments:
            return
        asyncio.ensure_future(bus.publish(conference_topic(recorder.conference_id), {
            "type": EVENT, "v": 1, "recording_id": recorder.id,
            "duration_seconds": round(float(recorder.duration), 3), "size_bytes": int(recorder.size_bytes),
        }))

    manager.on_finished = on_finished
