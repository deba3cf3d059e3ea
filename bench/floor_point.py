"""The benchmark's connection point (bench.floor_switch): a process that behaves like the point page.

It holds the conference WebSocket open with its point token and, when a ``floor.state`` message
says its point holds the floor, WHIP-publishes its clip with that token (``bench.whip_publisher``:
pre-encoded H.264 + Opus, PLI answered with the clip's next keyframe); when the floor is no longer
its own, it closes the session, as the page does. Each turn's steps are timed on this machine's
wall clock: the grant heard, the WHIP answer, ICE+DTLS connected, the first frame sent, and the
server's ``media: live`` (the program switched to the point at the ingest).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass, field, fields
from typing import Any

from bench import ipc
from media.transport.ice import restrict_host_addresses


@dataclass
class Turn:
    """One holding of the floor, as the point saw it (wall-clock seconds)."""

    notified: float
    answered: float | None = None
    connected: float | None = None
    first_frame: float | None = None
    live: float | None = None
    ended: float | None = None
    keyframe_requests: int = 0
    keyframe_requested: list[float] = field(default_factory=list)  # when the server's PLI/FIRs arrived
    frames_sent: dict[str, int] = field(default_factory=dict)  # video and audio frames, the turn so far
    error: str = ""
    publisher: Any = field(default=None, repr=False)


class FloorPoint:
    def __init__(self, url: str, conference: str, point_id: str, token: str, clip: Any) -> None:
        self.url, self.conference, self.point_id, self.token, self.clip = url, conference, point_id, token, clip
        self.turns: list[Turn] = []
        self.ws_state = "connecting"
        self.mono_to_wall = time.time() - time.monotonic()  # ClipTrack times its start on the monotonic clock

    async def listen(self) -> None:
        import aiohttp

        ws_url = self.url.replace("http", "ws", 1) + f"/ws/conferences/{self.conference}?token={self.token}"
        async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, heartbeat=20) as ws:
            self.ws_state = "open"
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                event = json.loads(msg.data)
                if event.get("type") == "floor.state":
                    await self.on_state(event.get("current"), time.time())
        self.ws_state = "closed"

    async def on_state(self, current: dict | None, now: float) -> None:
        mine = current is not None and current.get("point_id") == self.point_id
        turn = self.turns[-1] if self.turns and self.turns[-1].ended is None else None
        if mine and turn is None:
            turn = Turn(notified=now)
            self.turns.append(turn)
            asyncio.ensure_future(self.publish(turn))
        elif mine and turn is not None and current.get("media") == "live" and turn.live is None:  # type: ignore[union-attr]
            turn.live = now
        elif not mine and turn is not None:
            turn.ended = now
            asyncio.ensure_future(self.stop(turn))  # (the WebSocket keeps being read meanwhile)

    async def publish(self, turn: Turn) -> None:
        from bench.whip_publisher import publish

        try:
            pub = await publish(self.url, self.conference, self.token, self.clip)
        except Exception as exc:  # noqa: BLE001 - reported with the turn
            turn.error = f"{type(exc).__name__}: {exc}"[:300]
            return
        turn.answered = time.time()
        turn.publisher = pub
        sender = pub.pc.getTransceivers()[0].sender  # the video sender: note when keyframes are asked for
        answer_request = sender._send_keyframe

        def keyframe_requested() -> None:
            turn.keyframe_requested.append(time.time())
            answer_request()

        sender._send_keyframe = keyframe_requested
        if pub.pc.connectionState == "connected":
            turn.connected = turn.answered

        @pub.pc.on("connectionstatechange")
        def changed() -> None:
            if pub.pc.connectionState == "connected" and turn.connected is None:
                turn.connected = time.time()

        if turn.ended is not None:  # the floor ended while the session was being set up
            await self.stop(turn)

    async def stop(self, turn: Turn) -> None:
        pub = turn.publisher
        if pub is None:
            return
        turn.publisher = None
        self._note_sent(turn, pub)
        try:
            await asyncio.wait_for(pub.close(), 10)
        except Exception:  # noqa: BLE001
            pass

    def _note_sent(self, turn: Turn, pub: Any) -> None:
        if pub.video.start is not None and turn.first_frame is None:
            turn.first_frame = self.mono_to_wall + pub.video.start
        turn.keyframe_requests = pub.video.keyframe_requests
        turn.frames_sent = {"video": pub.video.sent, "audio": pub.audio.sent}

    def status(self) -> dict:
        turns = []
        for turn in self.turns:
            if turn.publisher is not None:
                self._note_sent(turn, turn.publisher)
            turns.append({f.name: getattr(turn, f.name) for f in fields(turn) if f.name != "publisher"})
        return {"ws": self.ws_state, "turns": turns,
                "publishing": any(t.publisher is not None for t in self.turns)}


async def _run(conn: Any, url: str, conference: str, point_id: str, token: str, clip_args: dict) -> None:
    from bench.clip import test_clip

    point = FloorPoint(url, conference, point_id, token, test_clip(**clip_args))
    listener = asyncio.ensure_future(point.listen())

    async def handle(m: dict) -> dict:
        if m["op"] == "status":
            if listener.done() and listener.exception() is not None:
                raise RuntimeError(f"the point's WebSocket failed: {listener.exception()!r}")
            return point.status()
        raise ValueError(f"unknown op {m['op']}")

    try:
        await ipc.serve(conn, handle)
    finally:
        listener.cancel()
        for turn in point.turns:
            await point.stop(turn)


def main(conn: Any, url: str, conference: str, point_id: str, token: str, clip_args: dict) -> None:
    ipc.child_setup()
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -10)  # a real point has its own machine (as bench.publisher)
    except OSError:
        pass
    restrict_host_addresses(["127.0.0.1"])
    asyncio.run(_run(conn, url, conference, point_id, token, clip_args))
