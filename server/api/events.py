"""Per-conference WebSocket event channel: presence, live state, viewer counts (later floor, Q&A)."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from server.deps import identify
from server.events.bus import conference_topic

router = APIRouter(tags=["events"])


@router.websocket("/ws/conferences/{conference_id}")
async def conference_events(websocket: WebSocket, conference_id: str) -> None:
    app = websocket.app
    secret = websocket.query_params.get("token")
    async with app.state.sessionmaker() as db:
        principal = await identify(secret, websocket, db)  # type: ignore[arg-type]
    if principal is None or not (principal.is_admin or principal.conference_id == conference_id):
        await websocket.close(code=4401, reason="invalid token for this conference")
        return
    await websocket.accept()
    media = app.state.media
    bus = app.state.bus
    topic = conference_topic(conference_id)
    await websocket.send_json(
        {
            "type": "snapshot",
            "live": media.is_live(conference_id),
            "consumers": media.consumer_count(conference_id),
            "role": principal.role,
            "point_id": principal.subject_id if principal.role == "point" else None,
        }
    )
    await bus.publish(
        topic,
        {"type": "presence.joined", "role": principal.role, "name": principal.name,
         "token_id": principal.token_id, "subject_id": principal.subject_id},
    )

    async def pump() -> None:
        async for event in bus.stream(topic):
            await websocket.send_json(event)

    task = asyncio.create_task(pump())
    try:
        while True:
            message = await websocket.receive_json()
            if isinstance(message, dict) and message.get("type") == "ping":
                await websocket.send_json({"type": "pong"})
            elif isinstance(message, dict):
                handler = app.state.ws_handlers.get(message.get("type"))
                if handler is not None:
                    reply = await handler(conference_id, principal, message)
                    if reply is not None:  # e.g. why a headcount was refused
                        await websocket.send_json(reply)
    except (WebSocketDisconnect, RuntimeError, ValueError):
        pass
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await bus.publish(
            topic,
            {"type": "presence.left", "role": principal.role, "name": principal.name,
             "token_id": principal.token_id, "subject_id": principal.subject_id},
        )
