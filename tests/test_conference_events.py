"""The conference WebSocket per role, and what ending a conference does.

Organisers see every event; viewers, members, points and speakers see live state and counts but not
who else is connected. Ending a conference (status ``ended``) publishes ``conference.ended``, closes
its WHIP and WHEP sessions, finalises its recording and refuses new sessions until it is reopened.
"""

from __future__ import annotations

import asyncio
import json

import httpx
from websockets.asyncio.client import ClientConnection, connect

from bench.whip_publisher import publish
from tests.support.clips import light_clip
from tests.support.peers import subscribe
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until_async

PRIVATE = {"token_id", "subject_id", "subjects", "name", "role", "session_id", "point_id"}


def issue(server: ServerProcess, conf: str, role: str, name: str = "", **extra) -> dict:
    with server.admin() as c:
        r = c.post(f"/api/v1/conferences/{conf}/tokens", json={"role": role, "name": name, **extra})
    assert r.status_code == 201, r.text
    return r.json()


class Socket:
    """A conference WebSocket whose events are collected in the background."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict] = []
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                self.events.append(json.loads(message))
        except Exception:
            pass

    async def wait_for(self, predicate, timeout: float = 10.0) -> dict:  # type: ignore[no-untyped-def]
        """The first event ``predicate`` accepts, once it has come."""
        events = await wait_until_async(lambda: list(self.events), timeout, "such an event", interval=0.05,
                                        check=lambda events: any(predicate(e) for e in events))
        return next(e for e in events if predicate(e))

    def of_type(self, kind: str) -> list[dict]:
        return [e for e in self.events if e.get("type") == kind]


async def open_socket(server: ServerProcess, conf: str, token: str) -> Socket:
    ws = await connect(server.url.replace("http", "ws", 1) + f"/ws/conferences/{conf}?token={token}")
    sock = Socket(ws)
    await sock.wait_for(lambda e: e["type"] == "snapshot")
    return sock


async def test_each_role_sees_only_what_it_should(server: ServerProcess) -> None:
    conf = server.create_conference("Ai thấy gì")
    organiser = issue(server, conf, "organiser", "Ban tổ chức")
    viewer = issue(server, conf, "viewer", "Khách")
    member = issue(server, conf, "member", "Đảng viên A", subject_id="m1")
    with server.admin() as c:
        point = c.post(f"/api/v1/conferences/{conf}/points", json={"name": "Xã Đông", "level": "commune"}).json()
        link = c.post(f"/api/v1/conferences/{conf}/points/{point['id']}/token").json()
    sockets = {name: await open_socket(server, conf, token) for name, token in (
        ("organiser", organiser["token"]), ("viewer", viewer["token"]), ("point", link["token"]))}
    sub = None
    try:
        late = await open_socket(server, conf, member["token"])  # presence.joined, naming the member
        await sockets["organiser"].wait_for(
            lambda e: e["type"] == "presence.joined" and e.get("subject_id") == "m1")
        sub = await subscribe(server.url, conf, link["token"])  # the point's own WHEP session
        joined = await sockets["organiser"].wait_for(
            lambda e: e["type"] == "consumer.joined" and e.get("name") == "Xã Đông")
        assert joined["token_id"] == link["token_id"] and joined["subject_id"] == point["id"]
        session_id = joined["session_id"]
        # The point recognises its own session; the viewer learns a count, nothing about who.
        own = await sockets["point"].wait_for(lambda e: e["type"] == "consumer.joined")
        assert own["session_id"] == session_id and own["consumers"] == 1
        seen = await sockets["viewer"].wait_for(lambda e: e["type"] == "consumer.joined")
        assert seen["consumers"] == 1 and not PRIVATE & set(seen), seen

        # A headcount: the reporting point sees it confirmed, the viewer and member nothing.
        await sockets["point"].ws.send(json.dumps({"type": "headcount", "present": 17}))
        await sockets["point"].wait_for(lambda e: e["type"] == "headcount.reported" and e["present"] == 17)
        await sockets["organiser"].wait_for(lambda e: e["type"] == "headcount.reported")
        await late.ws.close()
        await sockets["organiser"].wait_for(lambda e: e["type"] == "presence.left" and e.get("subject_id") == "m1")
        await asyncio.sleep(0.5)  # the same events had as long to reach the others

        events = [e for e in sockets["viewer"].events if e["type"] != "snapshot"]  # the snapshot: its own role
        assert events  # it did receive events (consumer.joined), stripped
        assert not [e for e in events if e["type"].startswith("presence.")], events
        assert not sockets["viewer"].of_type("headcount.reported") and not sockets["viewer"].of_type("attendance.changed")
        for event in events:
            assert not PRIVATE & set(event), event
        assert not late.of_type("headcount.reported")
        for event in sockets["point"].events[1:]:  # only its own session's id, only its own point
            assert not {"token_id", "subject_id", "name"} & set(event), event
            assert event.get("session_id") in (None, session_id)
        assert not sockets["point"].of_type("presence.joined")
    finally:
        if sub is not None:
            await sub.close()
        for sock in sockets.values():
            await sock.ws.close()


async def test_ending_a_conference_closes_its_sessions_and_recording(server: ServerProcess) -> None:
    conf = server.create_conference("Bế mạc")
    organiser = issue(server, conf, "organiser", "Ban tổ chức")
    speaker = issue(server, conf, "speaker")
    point = issue(server, conf, "point", "Xã Tây")
    auth = {"Authorization": f"Bearer {organiser['token']}"}
    pub = await publish(server.url, conf, speaker["token"], light_clip())
    sub = await subscribe(server.url, conf, point["token"])
    watcher = await open_socket(server, conf, point["token"])
    try:
        assert await sub.wait_frames(30, timeout=30)
        async with httpx.AsyncClient(base_url=server.url, headers=auth, timeout=15) as api:
            r = await wait_until_async(lambda: api.get(f"/api/v1/conferences/{conf}/recording"), 20,
                                       "a first recorded segment", interval=0.2,
                                       check=lambda r: r.status_code == 200 and r.json()["segment_count"] > 0)
            recording = r.json()
            assert recording["status"] == "recording", r.text

            r = await api.patch(f"/api/v1/conferences/{conf}", json={"status": "ended"})
            assert r.status_code == 200, r.text
            await watcher.wait_for(lambda e: e["type"] == "conference.ended")

            async def gone() -> bool:
                stats = (await api.get("/api/v1/media/stats", headers={"Authorization": f"Bearer {server.admin_token}"})).json()
                return not [s for s in [*stats["producers"].values(), *stats["consumers"].values()]
                            if s["conference"] == conf]

            await wait_until_async(gone, 10, "the conference's media sessions closed", interval=0.2)
            r = await wait_until_async(lambda: api.get(f"/api/v1/recordings/{recording['id']}"), 20,
                                       "the recording finalised", interval=0.2,
                                       check=lambda r: r.status_code != 200 or r.json()["status"] == "complete")
            assert r.status_code == 200, r.text
            rec = r.json()
            assert rec["status"] == "complete" and rec["segment_count"] > 0, rec

            # No new session while it is ended; reopening allows them again.
            r = await api.post(f"/whep/{conf}", content="v=0\r\n",
                               headers={"Authorization": f"Bearer {point['token']}", "Content-Type": "application/sdp"})
            assert r.status_code == 409 and "ended" in r.json()["detail"]
            r = await api.post(f"/whip/{conf}", content="v=0\r\n",
                               headers={"Authorization": f"Bearer {speaker['token']}", "Content-Type": "application/sdp"})
            assert r.status_code == 409
            assert (await api.patch(f"/api/v1/conferences/{conf}", json={"status": "live"})).status_code == 200
            r = await api.post(f"/whep/{conf}", content="v=0\r\n",
                               headers={"Authorization": f"Bearer {point['token']}", "Content-Type": "application/sdp"})
            assert r.status_code == 400  # past the status check: now the offer itself is judged
    finally:
        await watcher.ws.close()
        await sub.close()
        await pub.close()
