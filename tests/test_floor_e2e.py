"""The floor end to end through a real server (ingest + a media worker): a point raises its hand on
the conference WebSocket, the chair grants it, the point publishes over WHIP with its own token,
every subscriber decodes the point without a new WHEP session and hears the dialogue, the hall's
own playback hears the point alone, the chair ends the floor and everyone has the speaker again;
the recording has both in order and a chapter named after the point where its dialogue begins.

The media plane's parts in detail (mute, a cut link) are in tests/test_floor_media.py, the floor's
rules and API in tests/test_floor_api.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from aiortc import RTCPeerConnection
from websockets.asyncio.client import connect

from bench.clip import test_clip
from bench.whip_publisher import NO_ICE, negotiate, publish
from tests.support.hls_probe import streams
from tests.support.program_probe import HALL_TONE, POINT_LUMA, POINT_TONE, ProgramWatcher, heard
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until_async
from tests.test_floor_media import point_span, recorded_pictures

pytestmark = pytest.mark.slow

SUBJECT = "Hỏi về chuyển đổi số cấp xã"


async def watch(server: ServerProcess, conference: str, token: str) -> ProgramWatcher:
    pc = RTCPeerConnection(NO_ICE)
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    watcher = ProgramWatcher(pc)
    watcher.attach()
    await negotiate(pc, f"{server.url}/whep/{conference}", token)
    return watcher


async def until(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    await wait_until_async(check, timeout, what, check=lambda v: v is True, interval=0.1)


async def hears(watcher: ProgramWatcher, hall: bool, point: bool, what: str) -> None:
    def check() -> bool:
        levels = watcher.tones()
        return heard(levels, HALL_TONE) == hall and heard(levels, POINT_TONE) == point
    try:
        await wait_until_async(check, 12, what, interval=0.25)
    except AssertionError:
        raise AssertionError(f"{what}: tone levels {watcher.tones()}") from None


def consumer_ids(server: ServerProcess, conference: str) -> set[str]:
    with server.admin() as c:
        consumers = c.get("/api/v1/media/stats").json()["consumers"]
    return {k for k, v in consumers.items() if v["conference"] == conference}


async def next_state(ws, where, timeout: float = 15.0) -> dict:  # type: ignore[no-untyped-def]
    """The next floor.state message satisfying ``where``."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "no such floor.state message"
        message = json.loads(await asyncio.wait_for(ws.recv(), left))
        if message.get("type") == "floor.state" and where(message):
            return message


async def test_a_point_takes_the_floor_is_seen_and_heard_everywhere_and_gives_it_back(
    server: ServerProcess, tmp_path: Path
) -> None:
    speaker_clip = test_clip(seconds=6, width=320, height=180, fps=30, kbps=400)
    point_clip = test_clip(seconds=6, width=320, height=180, fps=30, kbps=400, tone=POINT_TONE, luma=POINT_LUMA)
    conf = server.create_conference("Hội nghị hai chiều")
    base = f"/api/v1/conferences/{conf}"
    points = {}
    with server.admin() as c:
        for name in ("Xã Tam Hồng", "Xã Đồng Văn"):
            pid = c.post(f"{base}/points", json={"name": name, "level": "commune"}).json()["id"]
            points[name] = (pid, c.post(f"{base}/points/{pid}/token").json()["token"])
    asking_id, asking_token = points["Xã Tam Hồng"]
    other_token = points["Xã Đồng Văn"][1]
    organiser = server.token(conf, "organiser", "Ban tổ chức")
    speaker_token = server.token(conf, "speaker", "Hội trường tỉnh")

    speaker = await publish(server.url, conf, speaker_token, speaker_clip)
    other = await watch(server, conf, other_token)
    viewer = await watch(server, conf, server.token(conf, "viewer", "Đảng viên ở nhà"))
    hall = await watch(server, conf, speaker_token)  # the hall's own playback
    point = None
    try:
        for w in (other, viewer):
            await until(lambda w=w: w.showing_point() is False, 20, "the speaker's picture")
        await hears(other, hall=True, point=False, what="the speaker alone")
        sessions = consumer_ids(server, conf)
        assert len(sessions) == 3

        ws_url = server.url.replace("http", "ws", 1) + f"/ws/conferences/{conf}?token={asking_token}"
        async with connect(ws_url) as ws:
            await ws.send(json.dumps({"type": "floor.raise", "subject": SUBJECT}))
            await next_state(ws, lambda s: [e["point_id"] for e in s.get("queue", [])] == [asking_id])
        async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {organiser}"}) as c:
            r = await c.post(f"{base}/floor/grant", json={"point_id": asking_id})
            assert r.status_code == 200, r.text
            granted = time.monotonic()
            point = await publish(server.url, conf, asking_token, point_clip)
            for w in (other, viewer, hall):
                await until(lambda w=w: w.showing_point(granted) is True, 15, "the point's picture")
            assert consumer_ids(server, conf) == sessions, "no subscriber opened a new WHEP session"
            for w in (other, viewer):
                await hears(w, hall=True, point=True, what="the dialogue: hall and point")
            await hears(hall, hall=False, point=True, what="the hall hears the point, not itself")
            state = (await c.get(f"{base}/floor")).json()
            assert state["current"]["point_id"] == asking_id and state["current"]["media"] == "live"

            r = await c.post(f"{base}/floor/end")
            assert r.status_code == 200, r.text
            ended = time.monotonic()
            for w in (other, viewer):
                await until(lambda w=w: w.showing_point(ended) is False, 15, "the speaker's picture again")
            await hears(other, hall=True, point=False, what="the speaker alone again")
            assert consumer_ids(server, conf) == sessions
            await asyncio.sleep(1.5)  # some of the speaker's run in the recording

            r = await c.post(f"{base}/recording/stop")
            assert r.status_code == 200, r.text
            detail = (await c.get(f"/api/v1/recordings/{r.json()['id']}")).json()
            chapters = [ch for ch in detail["chapters"] if ch["title"] == f"Xã Tam Hồng: {SUBJECT}"]
            assert len(chapters) == 1, detail["chapters"]
            for _ in range(240):  # the MP4 is made on the first request (202), then served
                download = await c.get(detail["download_url"])
                assert download.status_code in (200, 202), download.text
                if download.status_code == 200:
                    break
                await asyncio.sleep(0.25)
            assert download.status_code == 200, "the MP4 was not made in 60 s"
        mp4 = tmp_path / "floor.mp4"
        mp4.write_bytes(download.content)
        assert set(streams(mp4)) == {"video", "audio"}
        pictures = recorded_pictures(mp4)
        assert pictures[0] == "speaker" and "point" in pictures and pictures[-1] == "speaker", pictures
        start, _ = point_span(mp4)
        assert abs(chapters[0]["at_seconds"] - start) < 1.0, (chapters[0], start)
    finally:
        for w in (other, viewer, hall):
            await w.close()
        await speaker.close()
        if point is not None:
            await point.close()
