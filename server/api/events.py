"""Per-conference WebSocket event channel: presence, live state, viewer counts (later floor, Q&A)."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from server.api.attendance import headcount_message
from server.api.floor import FLOOR_MESSAGES, floor_message
from server.api.quality import QUALITY_MESSAGES, quality_message
from server.deps import (
    BusDep, FloorDep, MediaDep, QualityDep, SessionmakerDep, SettingsDep, TokenWatchDep, identify,
)
from server.domain.questions import selected_question, selected_view
from server.events.bus import conference_topic
from server.events.visibility import visible_event

router = APIRouter(tags=["events"])


@router.websocket("/ws/conferences/{conference_id}")
async def conference_events(
    websocket: WebSocket,
    conference_id: str,
    settings: SettingsDep,
    sessionmaker: SessionmakerDep,
    media: MediaDep,
    bus: BusDep,
    token_watch: TokenWatchDep,
    floor: FloorDep,
    quality: QualityDep,
) -> None:
    secret = websocket.query_params.get("token")
    async with sessionmaker() as db:
        principal = await identify(secret, settings, db)
    if principal is None or not (principal.is_admin or principal.conference_id == conference_id):
        await websocket.close(code=4401, reason="invalid token for this conference")
        return
    await websocket.accept()
    topic = conference_topic(conference_id)
    async with sessionmaker() as db:  # the question on screen, for a page that (re)connects
        question = selected_view(await selected_question(db, conference_id))
    await websocket.send_json(
        {
            "type": "snapshot",
            "live": media.is_live(conference_id),
            "consumers": media.consumer_count(conference_id),
            "role": principal.role,
            "point_id": principal.subject_id if principal.role == "point" else None,
            "question": question,
        }
    )
    # The floor as this role may see it (a reconnecting page gets the holder and the queue again).
    await websocket.send_json({"type": "floor.state", **await floor.view(conference_id, principal.role)})
    await bus.publish(
        topic,
        {"type": "presence.joined", "role": principal.role, "name": principal.name,
         "token_id": principal.token_id, "subject_id": principal.subject_id},
    )

    async def pump() -> None:
        async for event in bus.stream(topic):
            shown = visible_event(event, principal)
            if shown is not None:
                await websocket.send_json(shown)

    async def read() -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, ValueError):
            while True:
                message = await websocket.receive_json()
                if isinstance(message, dict) and message.get("type") == "ping":
                    await websocket.send_json({"type": "pong"})
                elif isinstance(message, dict) and message.get("type") == "headcount":
                    reply = await headcount_message(sessionmaker, bus, conference_id, principal, message)
                    if reply is not None:  # why the headcount was refused
                        await websocket.send_json(reply)
                elif isinstance(message, dict) and message.get("type") in FLOOR_MESSAGES:
                    reply = await floor_message(floor, conference_id, principal, message)
                    if reply is not None:  # why the floor action was refused
                        await websocket.send_json(reply)
                elif isinstance(message, dict) and message.get("type") in QUALITY_MESSAGES:
                    # a point page's playback report (quality.ack) or rendition pin (rendition.pinned)
                    await websocket.send_json(await quality_message(quality, conference_id, principal, message))

    token_ended = asyncio.Event()

    async def end() -> None:
        token_ended.set()

    forget = token_watch.watch_socket(principal.token_id, end)
    tasks = [asyncio.create_task(pump()), asyncio.create_task(read()), asyncio.create_task(token_ended.wait())]
    try:
        # Until the client leaves (read ends) or its token is revoked or expires (the watch says so).
        await asyncio.wait(tasks[1:], return_when=asyncio.FIRST_COMPLETED)
        if token_ended.is_set():
            with contextlib.suppress(Exception):
                await websocket.close(code=4401, reason="token revoked or expired")
    finally:
        forget()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await bus.publish(
            topic,
            {"type": "presence.left", "role": principal.role, "name": principal.name,
             "token_id": principal.token_id, "subject_id": principal.subject_id},
        )
