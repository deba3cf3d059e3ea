"""Media session changes as conference events: a speaker going live or offline, subscribers joining
and leaving (with the consumer count), for dashboards, presence and attendance; the floor point's
media going live, stalling or closing (``floor.media``), for the floor's state; a point's video
changing rendition (``rendition.changed``)."""

from __future__ import annotations

import asyncio
from typing import Any

from media.engine import MediaEngine
from server.events.bus import EventBus, conference_topic


def publish_media_events(media: MediaEngine, bus: EventBus) -> None:
    """Publish every producer's and consumer's opening and closing on the conference's topic."""

    def on_producer(conference_id: str, producer: Any, opened: bool) -> None:
        if producer.role == "point":  # a point holding the floor: the floor's events, not the hall's
            if not opened:
                on_floor(conference_id, producer, "closed")
            return
        asyncio.ensure_future(
            bus.publish(
                conference_topic(conference_id),
                {"type": "speaker.live" if opened else "speaker.offline", "session_id": producer.id,
                 "consumers": media.consumer_count(conference_id)},
            )
        )

    def on_consumer(conference_id: str, consumer: Any, opened: bool) -> None:
        asyncio.ensure_future(
            bus.publish(
                conference_topic(conference_id),
                {
                    "type": "consumer.joined" if opened else "consumer.left",
                    "session_id": consumer.id,
                    "role": consumer.role,
                    "name": consumer.name,
                    "token_id": getattr(consumer, "owner", None),
                    "subject_id": getattr(consumer, "subject_id", None),
                    "consumers": media.consumer_count(conference_id),
                },
            )
        )

    def on_floor(conference_id: str, producer: Any, state: str) -> None:
        asyncio.ensure_future(
            bus.publish(
                conference_topic(conference_id),
                {"type": "floor.media", "point_id": producer.subject_id, "state": state, "session_id": producer.id},
            )
        )

    def on_rendition(conference_id: str, consumer: Any, rendition: str, reason: str) -> None:
        asyncio.ensure_future(
            bus.publish(
                conference_topic(conference_id),
                {"type": "rendition.changed", "session_id": consumer.id, "token_id": getattr(consumer, "owner", None),
                 "subject_id": getattr(consumer, "subject_id", None), "rendition": rendition, "reason": reason},
            )
        )

    media.on_producer.append(on_producer)
    media.on_floor.append(on_floor)
    media.on_rendition.append(on_rendition)
    media.on_consumer.append(on_consumer)
