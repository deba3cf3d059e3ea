"""The floor over REST, the conference WebSocket, WHIP, moderation, the report and the CLI.

Real server processes (one shared by most tests, with a 2 s time-limit warning lead and a 3 s grace
for a lost link so the deadlines can be watched; one of default settings that is restarted), real
WebSocket clients, and a real aiortc peer's SDP offer for WHIP.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from bench.clip import test_clip
from bench.server_process import ROOT
from bench.whip_publisher import publish
from tests.support.http import http
from tests.support.peers import subscribe
from tests.support.server import ServerFactory, ServerProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out

WARNING_SECONDS = 2.0  # the shared server's floor_warning_seconds
LINK_GRACE = 3.0  # its floor_link_grace_seconds
WAIT = 15.0  # bound of every wait for the server


@pytest.fixture(scope="module")
def srv(start_server: ServerFactory) -> Iterator[ServerProcess]:
    with start_server(
        "floor", workers=1, floor_warning_seconds=WARNING_SECONDS, floor_link_grace_seconds=LINK_GRACE
    ) as server:
        yield server


@dataclass
class Point:
    id: str
    name: str
    token: str
    token_id: str


@dataclass
class Conf:
    """A conference with three points (each with its operator token) and a token of every role."""

    server: ServerProcess
    id: str
    tokens: dict[str, str] = field(default_factory=dict)  # role -> token
    points: list[Point] = field(default_factory=list)
    member_id: str = ""

    def call(self, who: str, method: str, tail: str, body: Any = None) -> httpx.Response:
        """``who``: a role, "admin", or a point's index ("p0"...)."""
        token = self.server.admin_token if who == "admin" else (
            self.points[int(who[1:])].token if who.startswith("p") else self.tokens[who]
        )
        return http.request(
            method, f"{self.server.url}/api/v1/conferences/{self.id}/{tail}", json=body,
            headers={"Authorization": f"Bearer {token}"}, timeout=15,
        )

    def ok(self, who: str, method: str, tail: str, body: Any = None, status: int = 200) -> Any:
        r = self.call(who, method, tail, body)
        assert r.status_code == status, f"{who} {method} {tail}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def floor(self, who: str = "organiser") -> dict:
        return self.ok(who, "GET", "floor")

    def history(self) -> list[dict]:
        return self.ok("organiser", "GET", "floor/history")

    def ws(self, who: str) -> ClientConnection:
        token = self.points[int(who[1:])].token if who.startswith("p") else self.tokens[who]
        url = self.server.url.replace("http", "ws", 1) + f"/ws/conferences/{self.id}?token={token}"
        return connect(url, open_timeout=10, close_timeout=2)


def make_conference(server: ServerProcess) -> Conf:
    conf = Conf(server, server.create_conference("Hội nghị hai chiều"))
    with server.admin() as c:
        base = f"/api/v1/conferences/{conf.id}"
        for role in ("organiser", "speaker", "viewer"):
            r = c.post(f"{base}/tokens", json={"role": role, "name": role})
            assert r.status_code == 201, r.text
            conf.tokens[role] = r.json()["token"]
        for name, level in (("Huyện Yên Lạc", "district"), ("Xã Tam Hồng", "commune"), ("Xã Đồng Văn", "commune")):
            pid = c.post(f"{base}/points", json={"name": name, "level": level}).json()["id"]
            link = c.post(f"{base}/points/{pid}/token").json()
            conf.points.append(Point(pid, name, link["token"], link["token_id"]))
        conf.member_id = c.post(f"{base}/members", json={"name": "Nguyễn Văn An"}).json()["id"]
        conf.tokens["member"] = c.post(f"{base}/members/{conf.member_id}/token").json()["token"]
    return conf


def next_event(ws: ClientConnection, kind: str, timeout: float = WAIT,
               where: Callable[[dict], bool] = lambda e: True) -> dict:
    """The next message of type ``kind`` that satisfies ``where`` (others are skipped)."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {kind} message within {timeout} s; saw {seen[-5:]}")
        try:
            event = json.loads(ws.recv(timeout=left))
        except TimeoutError:
            continue
        seen.append(event)
        if event.get("type") == kind and where(event):
            return event


def queue_ids(state: dict) -> list[str]:
    return [e["point_id"] for e in state["queue"]]


def kinds(history: list[dict]) -> list[tuple[str, str, str | None]]:
    return [(e["kind"], e["point_name"], e["reason"]) for e in history]


# --- raising and lowering hands ------------------------------------------------------------------------


def test_hands_are_queued_in_order_of_request_and_lowered_by_the_point_or_the_chair(srv: ServerProcess) -> None:
    conf = make_conference(srv)
    p0, p1, p2 = conf.points
    assert conf.floor() == {"v": 1, "locked": False, "current": None, "queue": []}
    state = conf.ok("p1", "POST", "floor/requests", {"subject": "Về chuyển đổi số"})
    assert queue_ids(state) == [p1.id]
    conf.ok("p0", "POST", "floor/requests", {"subject": "Về đất đai"})
    conf.ok("p2", "POST", "floor/requests", {})
    # Asking again changes the subject, not the place.
    state = conf.ok("p1", "POST", "floor/requests", {"subject": "Về chuyển đổi số ở cấp xã"})
    assert queue_ids(state) == [p1.id, p0.id, p2.id]
    first = state["queue"][0]
    assert first["point_name"] == p1.name and first["level"] == "commune"
    assert first["subject"] == "Về chuyển đổi số ở cấp xã" and first["requested_at"]
    assert "quality" in first  # null until the point's own WHEP session reports figures

    # Points see the queue (their place in it); viewers and members only who speaks.
    assert queue_ids(conf.floor("p2")) == [p1.id, p0.id, p2.id]
    assert queue_ids(conf.floor("speaker")) == [p1.id, p0.id, p2.id]
    for role in ("viewer", "member"):
        assert conf.floor(role) == {"v": 1, "locked": False, "current": None, "queue": None}

    r = conf.call("p0", "DELETE", f"floor/requests/{p2.id}")
    assert r.status_code == 403 and "lower" in r.json()["detail"], r.text
    assert queue_ids(conf.ok("p0", "DELETE", f"floor/requests/{p0.id}")) == [p1.id, p2.id]
    r = conf.call("p0", "DELETE", f"floor/requests/{p0.id}")
    assert r.status_code == 404 and "not asked" in r.json()["detail"], r.text
    assert queue_ids(conf.ok("organiser", "DELETE", f"floor/requests/{p2.id}")) == [p1.id]
    assert kinds(conf.history()) == [
        ("requested", p1.name, None), ("requested", p0.name, None), ("requested", p2.name, None),
        ("lowered", p0.name, None), ("lowered", p2.name, "chair"),
    ]
    assert conf.history()[0]["subject"] == "Về chuyển đổi số"  # as asked first


def test_only_points_ask_and_only_the_chair_grants(srv: ServerProcess) -> None:
    conf = make_conference(srv)
    p0, p1, _ = conf.points
    for role in ("viewer", "member", "organiser", "speaker", "admin"):
        r = conf.call(role, "POST", "floor/requests", {"subject": "x"})
        assert r.status_code == 403, (role, r.text)
        assert r.json()["detail"] == "only a connection point can ask for the floor"
    for target in (p0.id, p1.id):  # itself or another point
        r = conf.call("p0", "POST", "floor/grant", {"point_id": target})
        assert r.status_code == 403 and "cannot grant" in r.json()["detail"], r.text
    for role in ("viewer", "member"):
        assert conf.call(role, "POST", "floor/grant", {"point_id": p0.id}).status_code == 403
        assert conf.call(role, "POST", "floor/mute", {"muted": True}).status_code == 403
        assert conf.call(role, "POST", "floor/lock", {"locked": True}).status_code == 403
        assert conf.call(role, "POST", "floor/end-all").status_code == 403
        assert conf.call(role, "POST", "floor/end").status_code == 403
    for who in ("viewer", "member", "p0"):
        assert conf.call(who, "GET", "floor/history").status_code == 403
    assert conf.floor()["current"] is None  # nothing above changed the floor

    r = conf.call("organiser", "POST", "floor/grant", {"point_id": "0123456789abcdef"})
    assert r.status_code == 404 and "unknown point" in r.json()["detail"], r.text
    other = srv.create_conference("Hội nghị khác")
    with srv.admin() as c:
        foreign = c.post(f"/api/v1/conferences/{other}/points", json={"name": "Tỉnh B", "level": "province"}).json()["id"]
    assert conf.call("organiser", "POST", "floor/grant", {"point_id": foreign}).status_code == 404
    assert conf.call("p0", "POST", "floor/requests", {"subject": "x" * 201}).status_code == 422
    for limit in (0, -5, 10**9, "soon"):
        r = conf.call("organiser", "POST", "floor/grant", {"point_id": p0.id, "limit_seconds": limit})
        assert r.status_code == 422, (limit, r.text)
    assert conf.call("organiser", "POST", "floor/end").status_code == 409
    assert conf.call("organiser", "POST", "floor/mute", {"muted": True}).status_code == 409
    other_token = srv.token(other, "organiser")
    r = httpx.get(f"{srv.url}/api/v1/conferences/{conf.id}/floor", headers={"Authorization": f"Bearer {other_token}"})
    assert r.status_code == 403, r.text
    assert httpx.get(f"{srv.url}/api/v1/conferences/{conf.id}/floor").status_code == 401


# --- granting, ending, giving back, muting ---------------------------------------------------------


def test_grant_invite_end_and_give_back(srv: ServerProcess) -> None:
    conf = make_conference(srv)
    p0, p1, p2 = conf.points
    conf.ok("p0", "POST", "floor/requests", {"subject": "Về đất đai"})
    conf.ok("p2", "POST", "floor/requests", {"subject": "Về y tế"})
    state = conf.ok("speaker", "POST", "floor/grant", {"point_id": p0.id, "limit_seconds": None})
    current = state["current"]
    assert current["point_id"] == p0.id and current["point_name"] == p0.name and current["level"] == "district"
    assert current["subject"] == "Về đất đai" and current["media"] == "waiting" and not current["muted"]
    assert current["limit_seconds"] is None and current["ends_at"] is None
    assert queue_ids(state) == [p2.id]
    r = conf.call("p0", "POST", "floor/requests", {"subject": "again"})
    assert r.status_code == 409 and "already holds" in r.json()["detail"], r.text
    assert conf.call("organiser", "POST", "floor/grant", {"point_id": p0.id}).status_code == 409

    # The viewer sees who speaks, not which point id that is.
    seen = conf.floor("viewer")["current"]
    assert seen["point_name"] == p0.name and "point_id" not in {k for k, v in seen.items() if v is not None}

    muted = conf.ok("organiser", "POST", "floor/mute", {"muted": True})["current"]
    assert muted["muted"] and muted["point_id"] == p0.id
    assert not conf.ok("organiser", "POST", "floor/mute", {"muted": False})["current"]["muted"]

    # An invitation: p1 had not asked. p0's floor ends first.
    state = conf.ok("organiser", "POST", "floor/grant", {"point_id": p1.id, "limit_seconds": 600})
    assert state["current"]["point_id"] == p1.id and state["current"]["subject"] == ""
    ends_at = dt.datetime.fromisoformat(state["current"]["ends_at"])
    granted_at = dt.datetime.fromisoformat(state["current"]["granted_at"])
    assert abs((ends_at - granted_at).total_seconds() - 600) < 1
    r = conf.call("p0", "POST", "floor/end")
    assert r.status_code == 403 and "holding" in r.json()["detail"], r.text
    state = conf.ok("p1", "POST", "floor/end")  # gives it back
    assert state["current"] is None and queue_ids(state) == [p2.id]
    assert conf.call("p1", "POST", "floor/end").status_code == 409

    conf.ok("organiser", "POST", "floor/grant", {"point_id": p2.id})
    assert conf.ok("organiser", "POST", "floor/end")["current"] is None
    history = conf.history()
    assert kinds(history) == [
        ("requested", p0.name, None), ("requested", p2.name, None),
        ("granted", p0.name, None), ("muted", p0.name, None), ("unmuted", p0.name, None),
        ("ended", p0.name, "chair"), ("granted", p1.name, "invited"), ("ended", p1.name, "returned"),
        ("granted", p2.name, None), ("ended", p2.name, "chair"),
    ]
    ended = [e for e in history if e["kind"] == "ended"]
    assert all(e["duration_seconds"] is not None and 0 <= e["duration_seconds"] < 60 for e in ended)
    assert ended[0]["subject"] == "Về đất đai" and ended[2]["subject"] == "Về y tế"
    times = [dt.datetime.fromisoformat(e["at"]) for e in history]
    assert times == sorted(times)


def test_lock_queue_and_end_all(srv: ServerProcess) -> None:
    conf = make_conference(srv)
    p0, p1, p2 = conf.points
    conf.ok("p0", "POST", "floor/requests", {"subject": "a"})
    assert conf.ok("organiser", "POST", "floor/lock", {"locked": True})["locked"]
    r = conf.call("p1", "POST", "floor/requests", {"subject": "b"})
    assert r.status_code == 409 and "locked" in r.json()["detail"], r.text
    assert conf.call("p0", "POST", "floor/requests", {"subject": "changed"}).status_code == 409
    state = conf.floor("p1")
    assert state["locked"] and queue_ids(state) == [p0.id] and state["queue"][0]["subject"] == "a"
    # A locked queue can still be served and emptied.
    conf.ok("organiser", "POST", "floor/grant", {"point_id": p2.id})
    assert not conf.ok("speaker", "POST", "floor/lock", {"locked": False})["locked"]
    conf.ok("p1", "POST", "floor/requests", {"subject": "b"})
    state = conf.ok("organiser", "POST", "floor/end-all")
    assert state == {"v": 1, "locked": False, "current": None, "queue": []}
    assert conf.ok("organiser", "POST", "floor/end-all") == state  # nothing left: no change
    assert kinds(conf.history())[-4:] == [
        ("requested", p1.name, None), ("ended", p2.name, "end_all"),
        ("lowered", p0.name, "end_all"), ("lowered", p1.name, "end_all"),
    ]
    assert [e["kind"] for e in conf.history()].count("locked") == 1


def test_time_limit_warns_then_ends_the_floor(srv: ServerProcess) -> None:
    conf = make_conference(srv)
    p0 = conf.points[0]
    limit = 4
    with conf.ws("organiser") as chair, conf.ws("p0") as point, conf.ws("viewer") as viewer:
        for ws in (chair, point, viewer):
            next_event(ws, "floor.state")
        started = time.monotonic()
        conf.ok("organiser", "POST", "floor/grant", {"point_id": p0.id, "limit_seconds": limit})
        warning = next_event(point, "floor.warning")
        warned_after = time.monotonic() - started
        assert warning["point_id"] == p0.id and warning["point_name"] == p0.name and warning["v"] == 1
        assert 0 < warning["seconds_left"] <= WARNING_SECONDS
        assert limit - WARNING_SECONDS - 1 <= warned_after <= limit, warned_after
        assert "point_id" not in next_event(viewer, "floor.warning")
        next_event(chair, "floor.state", where=lambda e: e["current"] is None)
        ended_after = time.monotonic() - started
        assert limit - 0.5 <= ended_after <= limit + 3, ended_after
    [ended] = [e for e in conf.history() if e["kind"] == "ended"]
    assert ended["reason"] == "time_limit" and abs(ended["duration_seconds"] - limit) < 1.5, ended


# --- the WebSocket -------------------------------------------------------------------------------------


def test_floor_over_the_websocket(srv: ServerProcess) -> None:
    conf = make_conference(srv)
    p0, p1, _ = conf.points
    with conf.ws("p0") as point, conf.ws("organiser") as chair, conf.ws("viewer") as viewer:
        snapshot = json.loads(point.recv(timeout=10))
        assert snapshot["type"] == "snapshot" and snapshot["point_id"] == p0.id
        first = json.loads(point.recv(timeout=10))  # the floor follows the snapshot at once
        assert first == {"type": "floor.state", "v": 1, "locked": False, "current": None, "queue": []}
        for ws in (chair, viewer):
            next_event(ws, "floor.state")

        point.send(json.dumps({"type": "floor.raise", "subject": "Xin phát biểu về giáo dục"}))
        state = next_event(chair, "floor.state", where=lambda e: bool(e["queue"]))
        assert queue_ids(state) == [p0.id] and state["queue"][0]["subject"] == "Xin phát biểu về giáo dục"
        assert next_event(point, "floor.state", where=lambda e: bool(e["queue"]))["queue"][0]["point_id"] == p0.id
        assert next_event(viewer, "floor.state")["queue"] is None

        # Refusals are answered on the socket that asked, with REST's status.
        point.send(json.dumps({"type": "floor.grant", "point_id": p0.id, "limit_seconds": None}))
        error = next_event(point, "error")
        assert error["for"] == "floor.grant" and error["status"] == 403 and error["detail"]
        viewer.send(json.dumps({"type": "floor.raise", "subject": "x"}))
        error = next_event(viewer, "error")
        assert (error["for"], error["status"]) == ("floor.raise", 403)
        assert error["detail"] == "only a connection point can ask for the floor"
        chair.send(json.dumps({"type": "floor.mute", "muted": True}))
        assert (next_event(chair, "error")["status"]) == 409  # nobody holds the floor
        chair.send(json.dumps({"type": "floor.grant", "point_id": "nope"}))
        assert next_event(chair, "error")["status"] == 404

        point.send(json.dumps({"type": "floor.lower"}))
        next_event(chair, "floor.state", where=lambda e: e["queue"] == [])
        point.send(json.dumps({"type": "floor.lower"}))
        assert next_event(point, "error")["status"] == 404

        point.send(json.dumps({"type": "floor.raise", "subject": "Lần hai"}))
        next_event(chair, "floor.state", where=lambda e: bool(e["queue"]))
        chair.send(json.dumps({"type": "floor.grant", "point_id": p0.id, "limit_seconds": 300}))
        mine = next_event(point, "floor.state", where=lambda e: e["current"] is not None)
        assert mine["current"]["point_id"] == p0.id and mine["current"]["limit_seconds"] == 300
        shown = next_event(viewer, "floor.state", where=lambda e: e["current"] is not None)["current"]
        assert shown["point_name"] == p0.name and "point_id" not in shown
        chair.send(json.dumps({"type": "floor.mute", "muted": True}))
        assert next_event(point, "floor.state", where=lambda e: bool(e["current"] and e["current"]["muted"]))["current"]["point_id"] == p0.id

        conf.ok("p1", "POST", "floor/requests", {"subject": "Tiếp theo"})
        next_event(chair, "floor.state", where=lambda e: len(e["queue"]) == 1)

    # A page that reconnects gets the floor as it is: the holder and the queue.
    with conf.ws("organiser") as again:
        assert json.loads(again.recv(timeout=10))["type"] == "snapshot"
        state = json.loads(again.recv(timeout=10))
        assert state["type"] == "floor.state" and state["current"]["point_id"] == p0.id
        assert state["current"]["muted"] and state["current"]["subject"] == "Lần hai"
        assert queue_ids(state) == [p1.id]
        again.send(json.dumps({"type": "floor.end"}))
        next_event(again, "floor.state", where=lambda e: e["current"] is None)
    assert kinds(conf.history())[-1] == ("ended", p0.name, "chair")


# --- WHIP from a point ------------------------------------------------------------------------------


async def _publish_status(server: ServerProcess, conference: str, token: str) -> tuple[int, str, Any]:
    """WHIP-publish a real clip from an aiortc peer: (status, detail, publisher or None)."""
    try:
        publisher = await publish(server.url, conference, token, test_clip(seconds=2.0, width=320, height=240))
    except RuntimeError as exc:  # negotiate() names the status and the body
        text = str(exc)
        return int(text.split(": ", 1)[1].split(" ", 1)[0]), text, None
    return 201, "", publisher


def point_producers(server: ServerProcess, conference: str) -> list[str]:
    with server.admin() as c:
        producers = c.get("/api/v1/media/stats").json()["producers"]
    return [k for k, v in producers.items() if v.get("conference") == conference and v.get("role") == "point"]


def test_a_point_publishes_over_whip_only_while_it_holds_the_floor(srv: ServerProcess) -> None:
    conf = make_conference(srv)
    p0, p1, _ = conf.points

    async def scenario() -> None:
        status, detail, _ = await _publish_status(srv, conf.id, p0.token)
        assert status == 403 and "the floor has not been granted to this point" in detail, detail
        conf.ok("organiser", "POST", "floor/grant", {"point_id": p0.id})
        status, detail, _ = await _publish_status(srv, conf.id, p1.token)  # another point still may not
        assert status == 403, detail
        status, detail, publisher = await _publish_status(srv, conf.id, p0.token)
        assert status == 201, detail
        try:
            await asyncio.to_thread(
                wait_until, lambda: conf.floor()["current"]["media"], WAIT, "the point's stream live",
                check=lambda media: media == "live",
            )
            assert point_producers(srv, conf.id), "the point's producer is not listed"
            conf.ok("organiser", "POST", "floor/end")
            await asyncio.to_thread(
                wait_until, lambda: point_producers(srv, conf.id), WAIT, "the point's producer closed",
                check=lambda ids: not ids,
            )
        finally:
            await publisher.close()
        status, detail, _ = await _publish_status(srv, conf.id, p0.token)
        assert status == 403, detail

    asyncio.run(scenario())


def test_a_lost_link_ends_the_floor_after_the_grace(srv: ServerProcess) -> None:
    conf = make_conference(srv)
    p0 = conf.points[0]

    async def scenario() -> None:
        conf.ok("organiser", "POST", "floor/grant", {"point_id": p0.id})
        status, detail, publisher = await _publish_status(srv, conf.id, p0.token)
        assert status == 201, detail
        await asyncio.to_thread(
            wait_until, lambda: conf.floor()["current"]["media"], WAIT, "the point's stream live",
            check=lambda media: media == "live",
        )
        async with httpx.AsyncClient(timeout=10) as c:  # the point's session goes away
            r = await c.delete(publisher.location, headers={"Authorization": f"Bearer {p0.token}"})
        assert r.status_code == 200, r.text
        await publisher.close()
        closed_at = time.monotonic()
        state = await asyncio.to_thread(
            wait_until, conf.floor, WAIT, "the floor to end", check=lambda s: s["current"] is None
        )
        assert time.monotonic() - closed_at >= LINK_GRACE - 0.5
        assert state["current"] is None
        assert kinds(conf.history())[-1] == ("ended", p0.name, "link_lost")

    asyncio.run(scenario())


def test_the_queue_shows_a_points_link_quality(srv: ServerProcess) -> None:
    """A queued point that watches over WHEP shows its link's figures from its receiver reports."""
    conf = make_conference(srv)
    p0, p1, _ = conf.points

    async def scenario() -> None:
        speaker = await publish(srv.url, conf.id, conf.tokens["speaker"], test_clip(seconds=3.0, width=320, height=240))
        watcher = await subscribe(srv.url, conf.id, p0.token)
        try:
            assert await watcher.wait_frames(10, WAIT), "the point decodes no video"
            conf.ok("p0", "POST", "floor/requests", {"subject": "x"})
            conf.ok("p1", "POST", "floor/requests", {"subject": "y"})
            state = await asyncio.to_thread(
                wait_until, conf.floor, WAIT, "the point's link quality",
                check=lambda s: (s["queue"][0]["quality"] or {}).get("rtt_ms") is not None,
            )
            quality = state["queue"][0]["quality"]
            assert 0 <= quality["loss_percent"] < 5 and 0 <= quality["rtt_ms"] < 1000, quality
            assert quality["jitter_ms"] >= 0, quality
            assert state["queue"][1]["quality"] is None  # p1 watches nothing: no figures
        finally:
            await watcher.close()
            await speaker.close()

    asyncio.run(scenario())


# --- moderation -------------------------------------------------------------------------------------


def test_removing_a_point_revokes_its_tokens_closes_its_socket_and_ends_its_floor(srv: ServerProcess) -> None:
    conf = make_conference(srv)
    p0, p1, _ = conf.points
    with srv.admin() as c:  # a second link of the same point is removed with it
        r = c.post(f"/api/v1/conferences/{conf.id}/points/{p0.id}/token", params={"revoke_existing": "false"})
        assert r.status_code == 201, r.text
        second = r.json()
    conf.ok("p1", "POST", "floor/requests", {"subject": "b"})
    conf.ok("organiser", "POST", "floor/grant", {"point_id": p0.id})
    with conf.ws("p0") as point, conf.ws("organiser") as chair:
        next_event(point, "floor.state")
        next_event(chair, "floor.state")
        for who in ("viewer", "speaker", "p0", "member"):
            assert conf.call(who, "POST", "moderation/remove", {"point_id": p1.id}).status_code == 403, who
        out = conf.ok("organiser", "POST", "moderation/remove", {"point_id": p0.id})
        assert out["role"] == "point" and out["subject_id"] == p0.id and out["name"] == p0.name
        assert out["floor_ended"] and not out["lowered"]
        assert set(out["revoked_token_ids"]) >= {p0.token_id, second["token_id"]}
        started = time.monotonic()
        try:
            while True:
                point.recv(timeout=max(0.1, 8 - (time.monotonic() - started)))
                assert time.monotonic() - started < 8, "the removed point's WebSocket is still open"
        except ConnectionClosed as exc:
            assert exc.rcvd is not None and exc.rcvd.code == 4401
        except TimeoutError:
            pytest.fail("the removed point's WebSocket was not closed within 8 s")
        state = next_event(chair, "floor.state", where=lambda e: e["current"] is None)
        assert queue_ids(state) == [p1.id]
    for token in (p0.token, second["token"]):
        r = httpx.get(f"{srv.url}/api/v1/conferences/{conf.id}/floor", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, r.text
    assert kinds(conf.history())[-1] == ("ended", p0.name, "removed")

    # By one of its tokens: the queued point leaves the queue.
    out = conf.ok("organiser", "POST", "moderation/remove", {"token_id": p1.token_id})
    assert out["lowered"] and not out["floor_ended"] and out["revoked_token_ids"] == [p1.token_id]
    assert conf.floor()["queue"] == []
    assert kinds(conf.history())[-1] == ("lowered", p1.name, "removed")
    assert conf.call("p1", "GET", "floor").status_code == 401

    out = conf.ok("organiser", "POST", "moderation/remove", {"member_id": conf.member_id})
    assert out["role"] == "member" and len(out["revoked_token_ids"]) == 1
    assert conf.call("member", "GET", "floor").status_code == 401
    with srv.admin() as c:
        organiser_id = next(t["id"] for t in c.get(f"/api/v1/conferences/{conf.id}/tokens").json()
                            if t["role"] == "organiser")
    r = conf.call("organiser", "POST", "moderation/remove", {"token_id": organiser_id})
    assert r.status_code == 403, r.text
    for body in ({}, {"point_id": p0.id, "member_id": conf.member_id}):
        assert conf.call("organiser", "POST", "moderation/remove", body).status_code == 422
    assert conf.call("organiser", "POST", "moderation/remove", {"point_id": "0123456789abcdef"}).status_code == 404
    assert conf.call("organiser", "POST", "moderation/remove", {"token_id": "0123456789abcdef"}).status_code == 404


# --- restart, report, CLI ------------------------------------------------------------------------------


def test_the_floor_and_its_history_survive_a_restart(start_server: ServerFactory) -> None:
    server = start_server("floor-restart", workers=1)
    try:
        conf = make_conference(server)
        p0, p1, p2 = conf.points
        conf.ok("p1", "POST", "floor/requests", {"subject": "Về nông thôn mới"})
        conf.ok("p2", "POST", "floor/requests", {"subject": "Về an sinh"})
        limit = 25  # longer than a restart takes on a busy machine
        before = conf.ok("organiser", "POST", "floor/grant", {"point_id": p0.id, "limit_seconds": limit})
        conf.ok("organiser", "POST", "floor/mute", {"muted": True})
        conf.ok("organiser", "POST", "floor/lock", {"locked": True})
        history = conf.history()
        granted = time.monotonic()
        server.stop()
        server.start()
        after = conf.floor()
        assert time.monotonic() - granted < limit, "the restart took longer than the time limit"
        assert after["locked"] and after["current"] and after["current"]["muted"], (after, conf.history())
        assert {k: v for k, v in after["current"].items() if k != "muted"} == {
            k: v for k, v in before["current"].items() if k != "muted"}
        assert queue_ids(after) == [p1.id, p2.id] and after["queue"][0]["subject"] == "Về nông thôn mới"
        assert conf.history() == history
        # The time limit set before the restart still ends the floor.
        state = wait_until(conf.floor, limit + WAIT, "the time limit", check=lambda s: s["current"] is None)
        assert time.monotonic() - granted >= limit - 1
        assert queue_ids(state) == [p1.id, p2.id]
        assert kinds(conf.history())[-1] == ("ended", p0.name, "time_limit")
    finally:
        server.stop()


def diemcau(server: ServerProcess, token: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIEMCAU_")}
    env.update({"DIEMCAU_URL": server.url, "DIEMCAU_TOKEN": token, "PYTHONIOENCODING": "utf-8"})
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_report_floor_section_and_cli(srv: ServerProcess) -> None:
    conf = make_conference(srv)
    p0, p1, p2 = conf.points
    organiser = conf.tokens["organiser"]
    conf.ok("p0", "POST", "floor/requests", {"subject": "Về đất đai"})
    conf.ok("p2", "POST", "floor/requests", {"subject": "Về y tế"})

    r = diemcau(srv, organiser, "floor", conf.id)
    assert r.returncode == 0, r.stderr
    assert "Nobody holds the floor." in r.stdout and "Queue (2):" in r.stdout
    assert r.stdout.index(p0.name) < r.stdout.index(p2.name) and "Về đất đai" in r.stdout
    r = diemcau(srv, organiser, "floor", conf.id, "grant", p0.name, "--limit", "120")
    assert r.returncode == 0, r.stderr
    assert f"Floor: {p0.name} (district)" in r.stdout and "Về đất đai" in r.stdout
    assert conf.floor()["current"]["limit_seconds"] == 120
    time.sleep(1.2)
    r = diemcau(srv, organiser, "floor", conf.id, "grant", p1.id)  # an invitation; p0's floor ends
    assert r.returncode == 0 and f"Floor: {p1.name}" in r.stdout, r.stderr
    time.sleep(0.5)
    r = diemcau(srv, organiser, "floor", conf.id, "end")
    assert r.returncode == 0 and "Nobody holds the floor." in r.stdout, r.stderr
    r = diemcau(srv, organiser, "floor", conf.id, "end")
    assert r.returncode == 1 and "409" in r.stderr and "nobody holds the floor" in r.stderr
    r = diemcau(srv, organiser, "floor", conf.id, "grant", "Xã Không Có")
    assert r.returncode == 1 and "no point" in r.stderr
    r = diemcau(srv, organiser, "floor", conf.id, "history")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [line.split()[2] for line in lines] == ["requested", "requested", "granted", "ended", "granted", "ended"]
    assert "chair" in lines[3] and p0.name in lines[3]

    report = conf.ok("organiser", "GET", "attendance/report")["floor"]
    assert report["total_turns"] == 2 and report["requests"] == 2
    by_name = {x["point_name"]: x for x in report["points"]}
    assert list(by_name) == [p0.name, p1.name]  # in order of their first turn
    assert by_name[p0.name]["subjects"] == ["Về đất đai"] and by_name[p0.name]["turns"] == 1
    assert 1.0 <= by_name[p0.name]["seconds"] < 30 and 0.3 <= by_name[p1.name]["seconds"] < 30
    assert report["turns"][1]["invited"] and report["turns"][0]["end_reason"] == "chair"
    assert [x["point_name"] for x in report["never_granted"]] == [p2.name]
    assert report["total_seconds"] == pytest.approx(by_name[p0.name]["seconds"] + by_name[p1.name]["seconds"], abs=0.11)

    r = conf.call("organiser", "GET", "attendance/report.csv?table=floor")
    assert r.status_code == 200, r.text
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0] == ["name", "level", "turns", "minutes", "subjects"]
    assert rows[1][:3] == [p0.name, "district", "1"] and rows[1][4] == "Về đất đai"
    html = conf.call("organiser", "GET", "attendance/report.html").text
    assert "The floor: points that spoke" in html and "Về đất đai" in html
    r = diemcau(srv, organiser, "report", conf.id)
    assert r.returncode == 0 and "Floor: 2 turn(s)" in r.stdout and f"{p0.name} (district): 1 turn(s)" in r.stdout
