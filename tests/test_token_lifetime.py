"""Tokens end: revocation (REST, CLI, deleting the point or member) and expiry, everywhere at once.

A revoked or expired token is refused by every route, and what it still holds open on the server, a
WHEP or WHIP session (a real aiortc peer) and the conference WebSocket, is closed within seconds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
import time

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.whip_publisher import publish
from tests.support.clips import light_clip
from tests.support.http import http
from tests.support.peers import subscribe
from tests.support.server import ServerFactory, ServerProcess
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out

CLOSE_WITHIN = 8.0  # seconds: token_check_seconds is 2 by default; generous for a loaded machine


def issue(server: ServerProcess, conf: str, role: str, name: str = "", **extra) -> dict:
    with server.admin() as c:
        r = c.post(f"/api/v1/conferences/{conf}/tokens", json={"role": role, "name": name, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def media_stats(server: ServerProcess) -> dict:
    with server.admin() as c:
        return c.get("/api/v1/media/stats").json()


def sessions_of(server: ServerProcess, conf: str) -> tuple[list[str], list[str]]:
    """(producer ids, consumer ids) the server holds for the conference, workers included."""
    stats = media_stats(server)
    producers = [k for k, v in stats["producers"].items() if v["conference"] == conf]
    consumers = [k for k, v in stats["consumers"].items() if v["conference"] == conf]
    return producers, consumers


def ws_url(server: ServerProcess, conf: str, token: str) -> str:
    return server.url.replace("http", "ws", 1) + f"/ws/conferences/{conf}?token={token}"


async def closed_code(ws, timeout: float) -> int | None:  # type: ignore[no-untyped-def]
    """Read until the server closes the socket (bounded); its close code, or None if still open."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None
    except TimeoutError:
        return None


async def next_of_type(ws, kind: str, timeout: float) -> dict:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while True:
            event = json.loads(await ws.recv())
            if event.get("type") == kind:
                return event


def status(server: ServerProcess, method: str, path: str, token: str, **kw) -> int:
    return http.request(
        method, f"{server.url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=15, **kw
    ).status_code


IN_FLIGHT = 0.3  # seconds: a close reaches the worker process holding the session over its control socket


class RtpArrivals:
    """Counts the RTP packets a subscriber's receivers are handed (every kind, retransmissions too)."""

    def __init__(self, pc) -> None:  # type: ignore[no-untyped-def]
        self.count = 0
        for transceiver in pc.getTransceivers():
            receiver = transceiver.receiver
            original = receiver._handle_rtp_packet

            async def handle(packet, arrival_time_ms, original=original):  # type: ignore[no-untyped-def]
                self.count += 1
                await original(packet, arrival_time_ms)

            receiver._handle_rtp_packet = handle

async def test_revoking_a_token_closes_its_whep_session_and_websocket(server: ServerProcess) -> None:
    conf = server.create_conference("Thu hồi mã")
    speaker = issue(server, conf, "speaker", "Diễn giả")
    point = issue(server, conf, "point", "Xã Tân Lập")
    other = issue(server, conf, "point", "Xã Bên Cạnh")  # stays: only the revoked token's sessions close
    organiser = issue(server, conf, "organiser", "Ban tổ chức")
    pub = await publish(server.url, conf, speaker["token"], light_clip())
    sub = await subscribe(server.url, conf, point["token"])
    keep = await subscribe(server.url, conf, other["token"])
    arrivals = RtpArrivals(sub.pc)
    try:
        assert await sub.wait_frames(30, timeout=30) and await keep.wait_frames(30, timeout=30)
        assert arrivals.count > 0
        async with connect(ws_url(server, conf, point["token"])) as ws, \
                connect(ws_url(server, conf, other["token"])) as ws_other:
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "snapshot"
            assert json.loads(await asyncio.wait_for(ws_other.recv(), 10))["type"] == "snapshot"
            _, consumers = sessions_of(server, conf)
            assert len(consumers) == 2

            started = time.monotonic()
            r = httpx.post(f"{server.url}/api/v1/conferences/{conf}/tokens/{point['id']}/revoke",
                           headers={"Authorization": f"Bearer {organiser['token']}"}, timeout=15)
            assert r.status_code == 200, r.text
            assert r.json()["revoked"] is True and r.json()["revoked_at"]

            assert await closed_code(ws, CLOSE_WITHIN) == 4401  # the WebSocket is closed by the server
            await wait_until_async(lambda: len(sessions_of(server, conf)[1]) == 1, CLOSE_WITHIN, "the WHEP session closed",
                                   interval=0.2)
            assert time.monotonic() - started < CLOSE_WITHIN
            async with httpx.AsyncClient(timeout=10) as client:  # its WHEP session is gone
                r = await client.delete(sub.location, headers={"Authorization": f"Bearer {server.admin_token}"})
            assert r.status_code == 404
            # Nothing more reaches it: counted as RTP packets where they arrive (decoded frames would
            # include what the test's own decoder thread still had queued), after the moment the
            # worker process takes to act on the close it was sent.
            await asyncio.sleep(IN_FLIGHT)
            packets = arrivals.count
            await asyncio.sleep(1.5)
            assert arrivals.count == packets

            # The other point keeps its session and socket; its frames keep coming.
            frames = keep.frames
            assert await keep.wait_frames(frames + 20, timeout=15)
            await ws_other.send(json.dumps({"type": "ping"}))
            assert await next_of_type(ws_other, "pong", 10) == {"type": "pong"}

        # The revoked token is refused everywhere: WHEP, REST, WebSocket.
        r = httpx.post(f"{server.url}/whep/{conf}", content="v=0\r\n", timeout=15,
                       headers={"Authorization": f"Bearer {point['token']}", "Content-Type": "application/sdp"})
        assert r.status_code == 401
        assert status(server, "GET", f"/api/v1/conferences/{conf}", point["token"]) == 401
        with pytest.raises(Exception):
            async with connect(ws_url(server, conf, point["token"])) as ws:
                await asyncio.wait_for(ws.recv(), 5)
    finally:
        await sub.close()
        await keep.close()
        await pub.close()


async def test_revoking_the_speaker_stops_the_whip_session(server: ServerProcess) -> None:
    conf = server.create_conference("Thu hồi diễn giả")
    speaker = issue(server, conf, "speaker", "Diễn giả")
    pub = await publish(server.url, conf, speaker["token"], light_clip())
    try:
        await wait_until_async(lambda: len(sessions_of(server, conf)[0]) == 1, 15, "the WHIP session", interval=0.2)
        with server.admin() as c:
            assert c.post(f"/api/v1/conferences/{conf}/tokens/{speaker['id']}/revoke").status_code == 200
            assert c.get(f"/api/v1/conferences/{conf}").json()["live"] in (True, False)
        await wait_until_async(lambda: sessions_of(server, conf)[0] == [], CLOSE_WITHIN, "the WHIP session closed",
                               interval=0.2)
        with server.admin() as c:
            assert c.get(f"/api/v1/conferences/{conf}").json()["live"] is False
    finally:
        await pub.close()


async def test_an_expired_token_is_refused_and_its_websocket_closed(server: ServerProcess) -> None:
    conf = server.create_conference("Hết hạn")
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)
    viewer = issue(server, conf, "viewer", "Người xem", expires_at=soon.isoformat())
    assert dt.datetime.fromisoformat(viewer["expires_at"]) == soon
    assert status(server, "GET", f"/api/v1/conferences/{conf}", viewer["token"]) == 200
    async with connect(ws_url(server, conf, viewer["token"])) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "snapshot"
        assert await closed_code(ws, 3 + CLOSE_WITHIN) == 4401
    assert status(server, "GET", f"/api/v1/conferences/{conf}", viewer["token"]) == 401
    with server.admin() as c:
        (listed,) = [t for t in c.get(f"/api/v1/conferences/{conf}/tokens").json() if t["id"] == viewer["id"]]
    assert listed["expired"] is True and listed["revoked"] is False


def test_expiry_must_be_in_the_future_and_a_date(server: ServerProcess) -> None:
    conf = server.create_conference()
    with server.admin() as c:
        past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
        r = c.post(f"/api/v1/conferences/{conf}/tokens", json={"role": "viewer", "expires_at": past})
        assert r.status_code == 422 and "future" in r.json()["detail"]
        r = c.post(f"/api/v1/conferences/{conf}/tokens", json={"role": "viewer", "expires_at": "tomorrow"})
        assert r.status_code == 422


def test_default_lifetime_per_role(start_server: ServerFactory) -> None:
    """Without its own expiry a token gets its role's lifetime; 0 days = none; settings override."""
    srv = start_server(workers=1, token_lifetime_days={"viewer": 2, "point": 0})
    try:
        conf = srv.create_conference()
        before = dt.datetime.now(dt.UTC)
        viewer, point, member = (issue(srv, conf, role) for role in ("viewer", "point", "member"))
        after = dt.datetime.now(dt.UTC)
        expires = dt.datetime.fromisoformat(viewer["expires_at"])
        assert before + dt.timedelta(days=2) <= expires <= after + dt.timedelta(days=2)
        assert point["expires_at"] is None  # 0 = no expiry
        member_expires = dt.datetime.fromisoformat(member["expires_at"])  # member keeps its default: 60 days
        assert before + dt.timedelta(days=60) <= member_expires <= after + dt.timedelta(days=60)
    finally:
        srv.stop()


def test_organisers_list_tokens_without_secrets(server: ServerProcess) -> None:
    conf = server.create_conference("Danh sách mã")
    organiser = issue(server, conf, "organiser", "Ban tổ chức")
    issued = [issue(server, conf, "point", "Xã A", subject_id="p1"), issue(server, conf, "viewer", "Khách")]
    headers = {"Authorization": f"Bearer {organiser['token']}"}
    r = httpx.get(f"{server.url}/api/v1/conferences/{conf}/tokens", headers=headers, timeout=10)
    assert r.status_code == 200
    listed = {t["id"]: t for t in r.json()}
    assert set(listed) == {organiser["id"], *(t["id"] for t in issued)}
    point = listed[issued[0]["id"]]
    assert {k: point[k] for k in ("role", "name", "subject_id", "conference_id", "revoked")} == {
        "role": "point", "name": "Xã A", "subject_id": "p1", "conference_id": conf, "revoked": False}
    assert point["created_at"] and point["expires_at"]
    for t in issued + [organiser]:  # no secret, hashed or not, anywhere in the listing
        assert t["token"] not in r.text
    assert "token_hash" not in r.text and "hash" not in json.dumps(list(point))
    # Participants may not list or revoke; organisers may not revoke an organiser token; unknown: 404.
    viewer = issued[1]["token"]
    assert status(server, "GET", f"/api/v1/conferences/{conf}/tokens", viewer) == 403
    assert status(server, "POST", f"/api/v1/conferences/{conf}/tokens/{issued[0]['id']}/revoke", viewer) == 403
    assert status(server, "POST", f"/api/v1/conferences/{conf}/tokens/{organiser['id']}/revoke",
                  organiser["token"]) == 403
    assert status(server, "POST", f"/api/v1/conferences/{conf}/tokens/nope/revoke", organiser["token"]) == 404
    other = server.create_conference("Hội nghị khác")
    assert status(server, "POST", f"/api/v1/conferences/{other}/tokens/{issued[0]['id']}/revoke",
                  server.admin_token) == 404  # a token id of another conference is not found here


def test_deleting_a_point_or_member_revokes_its_tokens(server: ServerProcess) -> None:
    conf = server.create_conference("Xoá điểm cầu")
    with server.admin() as c:
        point = c.post(f"/api/v1/conferences/{conf}/points", json={"name": "Xã Xoá", "level": "commune"}).json()
        member = c.post(f"/api/v1/conferences/{conf}/members", json={"name": "Nguyễn Văn A"}).json()
        point_link = c.post(f"/api/v1/conferences/{conf}/points/{point['id']}/token").json()
        member_link = c.post(f"/api/v1/conferences/{conf}/members/{member['id']}/token").json()
        for link in (point_link, member_link):
            assert status(server, "GET", f"/api/v1/conferences/{conf}", link["token"]) == 200
        assert c.delete(f"/api/v1/conferences/{conf}/points/{point['id']}").status_code == 204
        assert c.delete(f"/api/v1/conferences/{conf}/members/{member['id']}").status_code == 204
        for link in (point_link, member_link):
            assert status(server, "GET", f"/api/v1/conferences/{conf}", link["token"]) == 401
        listed = {t["id"]: t for t in c.get(f"/api/v1/conferences/{conf}/tokens").json()}
        assert listed[point_link["token_id"]]["revoked"] and listed[member_link["token_id"]]["revoked"]


def test_cli_lists_and_revokes_tokens(server: ServerProcess) -> None:
    conf = server.create_conference("CLI thu hồi")
    viewer = issue(server, conf, "viewer", "Khách mời")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "server.cli", "--url", server.url, "--token", server.admin_token, *args],
            capture_output=True, text=True, timeout=60,
        )

    out = cli("tokens", conf)
    assert out.returncode == 0, out.stderr
    (line,) = [l for l in out.stdout.splitlines() if l.startswith(viewer["id"])]
    assert "viewer" in line and "Khách mời" in line and "active" in line
    assert viewer["token"] not in out.stdout
    out = cli("revoke", conf, viewer["id"])
    assert out.returncode == 0, out.stderr
    assert status(server, "GET", f"/api/v1/conferences/{conf}", viewer["token"]) == 401
    (line,) = [l for l in cli("tokens", conf).stdout.splitlines() if l.startswith(viewer["id"])]
    assert "revoked" in line
    out = cli("revoke", conf, "nope")
    assert out.returncode == 1 and "404" in out.stderr
