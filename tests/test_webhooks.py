"""Webhooks against a real server (one process: the relay, the API and the sender share one event loop)
and real HTTP receivers on 127.0.0.1: signed events of points, the speaker, the floor and the
recording; a failing receiver retried with backoff and the attempts in the delivery log; a receiver
that never answers, which neither slows the relay nor delays the other receivers; who may read the
log; deliveries left unfinished taken up after a restart. The mapping from conference events to
webhook events (a point's second session, quality turning poor and back) is checked in-process."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from bench.clip import test_clip
from bench.whip_publisher import publish
from server.domain.webhooks import WebhookEvent, WebhookEvents
from websockets.asyncio.client import connect

from tests.support.peers import delete_session, subscribe
from tests.support.server import ServerFactory, ServerProcess
from tests.support.waiting import wait_until, wait_until_async

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out

SECRET = "webhook-test-secret-3f9a"
TIMEOUT = 1.0  # webhook_timeout_seconds
FIRST_RETRY = 0.4  # webhook_retry_seconds
MAX_ATTEMPTS = 4


# --- receivers -------------------------------------------------------------------------------------
@dataclass
class Received:
    at: float  # time.monotonic()
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def event(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """An HTTP server in a thread that records every POST and answers the statuses queued in
    ``script`` first, then 200."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: deque[int] = deque()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver.lock:
                    status = receiver.script.popleft() if receiver.script else 200
                    receiver.received.append(
                        Received(time.monotonic(), {k.lower(): v for k, v in self.headers.items()}, body, status))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"

    def of(self, conference: str, kind: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.event["conference_id"] == conference
                    and (kind is None or r.event["type"] == kind)]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class HangingReceiver:
    """Accepts connections and reads nothing, answers nothing: a receiver that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/never"

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@dataclass
class Hooks:
    server: ServerProcess
    ok: Receiver
    flaky: Receiver
    hang: HangingReceiver


@pytest.fixture(scope="module")
def hooks(start_server: ServerFactory) -> Iterator[Hooks]:
    ok, flaky, hang = Receiver(), Receiver(), HangingReceiver()
    settings = dict(
        workers=1, webhook_urls=[ok.url, flaky.url, hang.url], webhook_secret=SECRET,
        webhook_timeout_seconds=TIMEOUT, webhook_retry_seconds=FIRST_RETRY, webhook_retry_max_seconds=5.0,
        webhook_max_attempts=MAX_ATTEMPTS, recording_idle_seconds=1.0, recording_min_free_bytes=0,
        quality_sample_seconds=1.0,
    )
    try:
        with start_server("webhooks", **settings) as server:
            yield Hooks(server, ok, flaky, hang)
    finally:
        for receiver in (ok, flaky, hang):
            receiver.close()


@pytest.fixture(scope="module")
def clip():  # type: ignore[no-untyped-def]
    return test_clip(seconds=6, width=320, height=180, fps=30, kbps=400)


# --- helpers ---------------------------------------------------------------------------------------
def signature_ok(received: Received) -> bool:
    """What a receiver does: HMAC-SHA256 of the raw body with the shared secret."""
    expected = "sha256=" + hmac.new(SECRET.encode(), received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, received.headers.get("x-diemcau-signature", ""))


def new_point(server: ServerProcess, conf: str, name: str) -> tuple[str, str]:
    """(point id, its operator's token)."""
    with server.admin() as c:
        point = c.post(f"/api/v1/conferences/{conf}/points", json={"name": name, "level": "commune"})
        assert point.status_code == 201, point.text
        token = c.post(f"/api/v1/conferences/{conf}/points/{point.json()['id']}/token")
        assert token.status_code == 201, token.text
    return point.json()["id"], token.json()["token"]


def deliveries(server: ServerProcess, token: str | None = None, **params: str) -> list[dict]:
    with httpx.Client(base_url=server.url, timeout=15,
                      headers={"Authorization": f"Bearer {token or server.admin_token}"}) as c:
        r = c.get("/api/v1/webhooks/deliveries", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def grant_and_end(server: ServerProcess, conf: str, point_id: str) -> None:
    with server.admin() as c:
        granted = c.post(f"/api/v1/conferences/{conf}/floor/grant", json={"point_id": point_id})
        assert granted.status_code == 200, granted.text
        ended = c.post(f"/api/v1/conferences/{conf}/floor/end")
        assert ended.status_code == 200, ended.text


def at(delivery: dict, n: int) -> dt.datetime:
    return dt.datetime.fromisoformat(delivery["attempt_log"][n]["started_at"])


# --- signed events ---------------------------------------------------------------------------------
async def test_points_speaker_and_recording_events_arrive_signed(hooks: Hooks, clip) -> None:  # type: ignore[no-untyped-def]
    server, ok = hooks.server, hooks.ok
    conf = server.create_conference("Hội nghị báo sự kiện")
    point, point_token = new_point(server, conf, "Xã Đồng Tâm")
    speaker = server.token(conf, "speaker", "Hội trường")
    pub = await publish(server.url, conf, speaker, clip)
    sub = await subscribe(server.url, conf, point_token)
    second = await subscribe(server.url, conf, point_token)  # a second screen of the same point
    try:
        assert await sub.wait_frames(20, timeout=20)
        await delete_session(second.location, point_token)
        await second.close()
        await asyncio.sleep(0.5)
        assert await delete_session(sub.location, point_token) == 200
    finally:
        await sub.close()
        await second.close()
    assert await delete_session(pub.location, speaker) == 200
    await pub.close()

    wanted = ["speaker.live", "point.joined", "point.left", "speaker.offline", "recording.finished"]
    got = await wait_until_async(lambda: [r.event["type"] for r in ok.of(conf)], 20,
                                 "the conference's events at the receiver", check=lambda got: set(wanted) <= set(got))
    # once each: the point's second session is not a second join, its first leaving not a leave
    assert sorted(got) == sorted(wanted), got
    assert got.index("point.joined") < got.index("point.left") and got.index("speaker.live") < got.index("speaker.offline")

    for received in ok.of(conf):
        event = received.event
        assert signature_ok(received), received.headers
        assert received.headers["x-diemcau-event"] == event["type"]
        assert received.headers["content-type"].startswith("application/json")
        assert set(event) == {"id", "type", "occurred_at", "conference_id", "data"}
        assert dt.datetime.fromisoformat(event["occurred_at"]).tzinfo is not None
    joined = ok.of(conf, "point.joined")[0].event["data"]
    assert joined["point_id"] == point and joined["name"] == "Xã Đồng Tâm"  # the name as sent, in UTF-8
    finished = ok.of(conf, "recording.finished")[0].event["data"]
    assert finished["size_bytes"] > 0 and finished["duration_seconds"] > 0 and finished["recording_id"]

    # A tampered body (or another secret) does not verify
    forged = ok.of(conf, "point.left")[0]
    assert not signature_ok(Received(0, forged.headers, forged.body.replace(b"left", b"joined"), 200))

    # The same event went to every receiver, under one event id; the log has each delivery
    log = deliveries(server, conference_id=conf, event_type="point.joined")
    assert {d["url"] for d in log} == {hooks.ok.url, hooks.flaky.url, hooks.hang.url}
    assert len({d["event_id"] for d in log}) == 1 and log[0]["payload"]["data"]["point_id"] == point
    delivered = next(d for d in log if d["url"] == hooks.ok.url)
    assert delivered["status"] == "delivered" and delivered["attempt_log"][0]["status_code"] == 200


async def test_floor_changes_are_webhooks(hooks: Hooks) -> None:
    server, ok = hooks.server, hooks.ok
    conf = server.create_conference("Hội nghị phát biểu")
    first, _ = new_point(server, conf, "Xã A")
    second, _ = new_point(server, conf, "Xã B")
    with server.admin() as c:
        base = f"/api/v1/conferences/{conf}/floor"
        assert c.post(f"{base}/grant", json={"point_id": first, "limit_seconds": 300}).status_code == 200
        assert c.post(f"{base}/lock", json={"locked": True}).status_code == 200  # not a change of holder
        assert c.post(f"{base}/grant", json={"point_id": second}).status_code == 200  # first ends, second speaks
        assert c.post(f"{base}/end").status_code == 200
    expected = [("floor.granted", first), ("floor.ended", first), ("floor.granted", second), ("floor.ended", second)]
    seen = wait_until(lambda: [(r.event["type"], r.event["data"]["point_id"]) for r in ok.of(conf)], 10,
                      "the floor's webhooks", check=lambda seen: len(seen) >= 4)
    time.sleep(0.3)  # nothing more comes (the lock is not a webhook)
    assert sorted(seen) == sorted(expected) and len(ok.of(conf)) == 4, seen
    granted = ok.of(conf, "floor.granted")
    assert {r.event["data"]["point_name"] for r in granted} == {"Xã A", "Xã B"}
    assert next(r for r in granted if r.event["data"]["point_id"] == first).event["data"]["limit_seconds"] == 300


async def test_a_point_turning_poor_and_recovering(hooks: Hooks, clip) -> None:  # type: ignore[no-untyped-def]
    """The point page's reports (over the conference WebSocket) say its picture stands still: the
    point's quality turns poor (point.poor), then frames move again (point.recovered)."""
    server, ok = hooks.server, hooks.ok
    conf = server.create_conference("Hội nghị chất lượng")
    point, point_token = new_point(server, conf, "Xã Vùng Cao")
    pub = await publish(server.url, conf, server.token(conf, "speaker"), clip)
    frames, freezes = 100, 0

    def report() -> str:
        return json.dumps({"type": "quality.report", "v": 1, "session_id": None, "frames_decoded": frames,
                           "frames_dropped": 0, "freeze_count": freezes, "total_freeze_duration": 6.0 * freezes,
                           "jitter_buffer_delay_ms": 40.0, "available_incoming_bitrate": 2_000_000,
                           "rendition": "full"})

    try:
        url = f"{server.url.replace('http', 'ws')}/ws/conferences/{conf}?token={point_token}"
        async with connect(url) as ws:
            for step in range(30):  # every second, as a page would every 5 s: 2 s playing, then frozen
                await ws.send(report())
                if step < 2:
                    frames += 30
                if ok.of(conf, "point.poor"):
                    break
                await asyncio.sleep(1.0)
            assert ok.of(conf, "point.poor"), "no point.poor webhook"
            freezes = 1
            for _ in range(30):  # frames move again
                frames += 30
                await ws.send(report())
                if ok.of(conf, "point.recovered"):
                    break
                await asyncio.sleep(1.0)
    finally:
        await pub.close()
    (poor,) = [r.event for r in ok.of(conf, "point.poor")]
    recovered = [r.event for r in ok.of(conf, "point.recovered")]
    assert len(recovered) == 1, recovered
    assert poor["data"]["point_id"] == point and poor["data"]["score"] == "poor"
    assert poor["data"]["name"] == "Xã Vùng Cao" and poor["data"]["previous"] != "poor"
    assert recovered[0]["data"]["point_id"] == point and recovered[0]["data"]["previous"] == "poor"
    assert recovered[0]["data"]["score"] in ("good", "fair")
    assert all(signature_ok(r) for r in ok.of(conf))


# --- retries -----------------------------------------------------------------------------------------
def test_a_failing_receiver_is_retried_with_backoff(hooks: Hooks) -> None:
    server, flaky = hooks.server, hooks.flaky
    conf = server.create_conference("Hội nghị thử lại")
    point, _ = new_point(server, conf, "Xã Thử Lại")
    with flaky.lock:
        flaky.script.extend([500, 503])  # two failures, then it recovers
    with server.admin() as c:
        assert c.post(f"/api/v1/conferences/{conf}/floor/grant", json={"point_id": point}).status_code == 200

    def flaky_delivery() -> dict | None:
        return next((d for d in deliveries(server, conference_id=conf) if d["url"] == flaky.url), None)

    done = wait_until(flaky_delivery, 15, "the flaky receiver's delivery delivered",
                      check=lambda d: d is not None and d["status"] == "delivered")
    assert done["attempts"] == 3 and [a["status_code"] for a in done["attempt_log"]] == [500, 503, 200]
    assert [a["number"] for a in done["attempt_log"]] == [1, 2, 3]
    # the waits double: 0.4 s, then 0.8 s (plus the time each POST took)
    first_wait = (at(done, 1) - at(done, 0)).total_seconds()
    second_wait = (at(done, 2) - at(done, 1)).total_seconds()
    assert FIRST_RETRY <= first_wait < FIRST_RETRY + 1.0, first_wait
    assert 2 * FIRST_RETRY <= second_wait < 2 * FIRST_RETRY + 1.0, second_wait
    # the receiver saw the same signed body three times, numbered
    posts = flaky.of(conf)
    assert [p.answered for p in posts] == [500, 503, 200]
    assert len({p.body for p in posts}) == 1 and all(signature_ok(p) for p in posts)
    assert [p.headers["x-diemcau-attempt"] for p in posts] == ["1", "2", "3"]
    assert len({p.headers["x-diemcau-delivery"] for p in posts}) == 1

    # A receiver that never answers: each attempt times out, then the delivery is given up
    hung = wait_until(lambda: deliveries(server, conference_id=conf, status="failed"), 20,
                      "the hanging receiver's delivery given up", check=bool)
    (gave_up,) = hung
    assert gave_up["url"] == hooks.hang.url and gave_up["attempts"] == MAX_ATTEMPTS
    assert all(a["status_code"] is None and "no answer" in a["error"] for a in gave_up["attempt_log"])
    assert all(TIMEOUT * 1000 * 0.9 <= a["duration_ms"] < TIMEOUT * 1000 + 1500 for a in gave_up["attempt_log"])
    assert gave_up["next_attempt_at"] is None and gave_up["delivered_at"] is None


def test_a_refusal_is_not_retried(hooks: Hooks) -> None:
    """A 4xx other than 408/429 will be the same next time: one attempt, failed."""
    server, flaky = hooks.server, hooks.flaky
    conf = server.create_conference("Hội nghị từ chối")
    point, _ = new_point(server, conf, "Xã Từ Chối")
    with flaky.lock:
        flaky.script.append(410)
    with server.admin() as c:
        assert c.post(f"/api/v1/conferences/{conf}/floor/grant", json={"point_id": point}).status_code == 200
    refused = wait_until(
        lambda: [d for d in deliveries(server, conference_id=conf) if d["url"] == flaky.url], 10,
        "the refused delivery", check=lambda ds: ds and ds[0]["status"] == "failed",
    )[0]
    assert refused["attempts"] == 1 and refused["last_status_code"] == 410
    time.sleep(FIRST_RETRY * 2)
    assert len(flaky.of(conf)) == 1


# --- off the media path --------------------------------------------------------------------------------
async def test_a_hanging_receiver_does_not_slow_the_relay(hooks: Hooks, clip) -> None:  # type: ignore[no-untyped-def]
    server, ok, hang = hooks.server, hooks.ok, hooks.hang
    conf = server.create_conference("Hội nghị không chờ")
    points = [new_point(server, conf, f"Xã {i}")[0] for i in range(15)]
    pub = await publish(server.url, conf, server.token(conf, "speaker"), clip)
    sub = await subscribe(server.url, conf, server.token(conf, "viewer"))
    try:
        assert await sub.wait_frames(30, timeout=20)
        held_before = len(hang.held)
        # 30 floor changes, each POSTed to the three receivers while the hanging one times out and retries
        t0 = time.monotonic()
        for p in points:
            await asyncio.to_thread(grant_and_end, server, conf, p)
        burst_seconds = time.monotonic() - t0
        await asyncio.sleep(max(0.0, 6.0 - burst_seconds))
        window = time.monotonic() - t0
        frames = sum(1 for t in sub.frame_times if t >= t0)
        fps = frames / window
        print(f"subscriber: {fps:.1f} fps over {window:.1f} s of webhook traffic to a hanging receiver")
        assert fps >= 27, f"{fps:.1f} fps while webhooks were sent"  # the clip is 30 fps

        # the hanging receiver was being tried (its lane: 4 POSTs at a time), without answers ...
        assert len(hang.held) - held_before >= 4
        hung = [d for d in deliveries(server, conference_id=conf) if d["url"] == hang.url]
        assert hung and all(d["status"] in ("pending", "retrying", "failed") for d in hung)
        assert any("no answer" in (d["last_error"] or "") for d in hung)
        # ... while the answering receiver had every event, each within moments of its change
        changes = wait_until(lambda: ok.of(conf), 10, "all 30 floor changes at the answering receiver",
                             check=lambda got: len([r for r in got if r.event["type"].startswith("floor.")]) == 30)
        lags = [r.at - t0 for r in changes]
        assert max(lags) < burst_seconds + 3.0, (max(lags), burst_seconds)
    finally:
        await sub.close()
        await pub.close()


# --- the log's readers ----------------------------------------------------------------------------------
def test_who_reads_the_delivery_log(hooks: Hooks) -> None:
    server = hooks.server
    conf = server.create_conference("Hội nghị nhật ký")
    other = server.create_conference("Hội nghị khác")
    grant_and_end(server, conf, new_point(server, conf, "Xã Nhật Ký")[0])
    grant_and_end(server, other, new_point(server, other, "Xã Khác")[0])
    organiser = server.token(conf, "organiser")
    wait_until(lambda: deliveries(server, conference_id=conf, status="delivered"), 10,
               "deliveries to both answering receivers", check=lambda ds: len(ds) >= 4)

    own = deliveries(server, organiser)  # an organiser's own conference by default
    assert own and {d["conference_id"] for d in own} == {conf}
    assert deliveries(server, organiser, conference_id=conf) == own
    # receiver URLs may hold credentials: organisers see scheme, host and port only
    port = hooks.ok.url.split(":")[2].split("/")[0]
    assert f"http://127.0.0.1:{port}/…" in {d["url"] for d in own}
    assert all("/hook" not in d["url"] and "/never" not in d["url"] for d in own)
    assert hooks.ok.url in {d["url"] for d in deliveries(server, conference_id=conf)}  # the admin: whole URLs
    # newest first, filters
    created = [d["created_at"] for d in own]
    assert created == sorted(created, reverse=True)
    ended = deliveries(server, organiser, event_type="floor.ended")
    assert ended and all(d["event_type"] == "floor.ended" for d in ended)
    assert len(deliveries(server, organiser, limit="2")) == 2

    with httpx.Client(base_url=server.url, timeout=15) as c:
        url = "/api/v1/webhooks/deliveries"
        as_ = lambda token: {"Authorization": f"Bearer {token}"}  # noqa: E731
        assert c.get(url, headers=as_(organiser), params={"conference_id": other}).status_code == 403
        for role in ("viewer", "point", "speaker", "member"):
            assert c.get(url, headers=as_(server.token(conf, role))).status_code == 403, role
        assert c.get(url).status_code == 401
        admin = as_(server.admin_token)
        assert c.get(url, headers=admin, params={"conference_id": "0" * 16}).status_code == 404
        assert c.get(url, headers=admin, params={"status": "lost"}).status_code == 422
        assert c.get(url, headers=admin, params={"event_type": "point.exploded"}).status_code == 422
        assert c.get(url, headers=admin, params={"limit": "0"}).status_code == 422


# --- the mapping, in-process ------------------------------------------------------------------------------
def test_conference_events_map_to_webhook_events() -> None:
    sent: list[WebhookEvent] = []
    mapper = WebhookEvents(sent.append, lambda e: e.get("origin") == "me",
                           started_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))

    def bus(kind: str, origin: str = "me", **fields: object) -> None:
        mapper.on_bus_event({"topic": "conference.c1", "origin": origin, "type": kind, **fields})

    def kinds() -> list[str]:
        out = [e.type for e in sent]
        sent.clear()
        return out

    point = dict(role="point", subject_id="p1", name="Xã Một")
    bus("consumer.joined", session_id="s1", **point)
    bus("consumer.joined", session_id="s2", **point)  # a second screen
    bus("consumer.joined", session_id="v1", role="viewer", subject_id=None, name="")  # not a point
    bus("consumer.left", session_id="s1", **point)
    assert kinds() == ["point.joined"]
    bus("consumer.left", session_id="s2", **point)
    bus("consumer.left", session_id="s2", **point)  # repeated: nothing more
    assert kinds() == ["point.left"]

    bus("quality.changed", point_id="p1", score="fair", previous="good")
    bus("quality.changed", point_id="p1", score="poor", previous="fair")
    bus("quality.changed", point_id="p1", score="poor", previous="poor")
    bus("quality.changed", point_id="p1", score="fair", previous="poor")
    bus("quality.changed", point_id="p1", score="good", previous="fair")
    assert kinds() == ["point.poor", "point.recovered"]
    bus("quality.changed", point_id="p1", score="poor", previous="good")
    assert sent[0].data["point_id"] == "p1" and "origin" not in sent[0].data and "topic" not in sent[0].data
    kinds()

    # A floor granted before this process started was announced by the one before: only its end is new
    holder = {"point_id": "p1", "point_name": "Xã Một", "granted_at": "2029-12-31T23:00:00+00:00"}
    bus("floor.state", current=holder)
    bus("floor.state", current={**holder, "media": "live"})  # the same holding
    assert kinds() == []
    bus("floor.state", current=None)
    later = {"point_id": "p2", "point_name": "Xã Hai", "granted_at": "2030-01-01T00:05:00+00:00"}
    bus("floor.state", current=later)
    assert kinds() == ["floor.ended", "floor.granted"]
    # Another node's changes are its own to announce; this node just follows the holder
    bus("floor.state", origin="other", current=None)
    bus("consumer.joined", origin="other", session_id="x", **point)
    bus("speaker.live", origin="other", session_id="x")
    assert kinds() == []
    bus("floor.state", current=None)
    assert kinds() == []  # already ended (by the other node)


# --- restart -----------------------------------------------------------------------------------------------
def test_unfinished_deliveries_are_taken_up_after_a_restart(hooks: Hooks) -> None:
    """Last in the module: it restarts the server. A delivery still retrying when the server stops
    is sent after the next start, from the log; one to a receiver no longer configured is given up."""
    server, flaky = hooks.server, hooks.flaky
    conf = server.create_conference("Hội nghị khởi động lại")
    point, _ = new_point(server, conf, "Xã Khởi Động")
    with flaky.lock:
        flaky.script.extend([500] * 3)  # retried after 0.4, 0.8 and 1.6 s: the server stops meanwhile
    with server.admin() as c:
        assert c.post(f"/api/v1/conferences/{conf}/floor/grant", json={"point_id": point}).status_code == 200
    wait_until(lambda: [d for d in deliveries(server, conference_id=conf) if d["url"] == flaky.url], 10,
               "the flaky delivery retrying", check=lambda ds: ds and ds[0]["status"] == "retrying")
    server.stop()
    stopped = dt.datetime.now(dt.UTC)
    # the hanging receiver is taken out of the settings meanwhile: its delivery ends with the restart
    server.extra_env["DIEMCAU_WEBHOOK_URLS"] = json.dumps([hooks.ok.url, flaky.url])
    server.start()
    done = wait_until(lambda: [d for d in deliveries(server, conference_id=conf) if d["url"] == flaky.url], 20,
                      "the flaky delivery delivered after the restart",
                      check=lambda ds: ds and ds[0]["status"] == "delivered")[0]
    assert done["attempt_log"][-1]["status_code"] == 200 and at(done, -1) > stopped, done["attempt_log"]
    assert done["attempts"] <= MAX_ATTEMPTS
    assert len({p.body for p in flaky.of(conf)}) == 1 and all(signature_ok(p) for p in flaky.of(conf))
    (dropped,) = [d for d in deliveries(server, conference_id=conf) if d["url"] == hooks.hang.url]
    assert dropped["status"] == "failed" and dropped["last_error"] == "receiver no longer configured", dropped
