"""Live link quality per point: scores, history, alerts, pins, the report, visibility, a crash.

One real server process (the ingest and a media worker, so the points' WHEP sessions live in the
worker and their figures come over the pool's stats refresh), sampling every 2 s and alerting after
8 s of poor quality so the alerts can be watched; a speaker publishing a real clip over WHIP; real
aiortc WHEP subscribers, one of them on a lossy link (``drop_every``: every Nth new video packet
lost before SRTP, as a bad line would); real WebSocket clients standing in for point pages where
a test needs to say exactly what the page reports. The last test kills the server and starts it
again.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from bench.clip import test_clip
from bench.server_process import ROOT
from bench.whip_publisher import publish
from server.domain.quality_score import assess, figure_score, fps_shortfall, smoothed
from tests.support.background import BackgroundPublisher
from tests.support.http import http
from tests.support.peers import subscribe
from tests.support.server import ServerFactory, ServerProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out

SAMPLE = 2.0  # the shared server's quality_sample_seconds
POOR_ALERT = 8.0  # its quality_poor_alert_seconds
WAIT = 30.0  # bound of the waits for the server


def small_clip():  # type: ignore[no-untyped-def]
    return test_clip(seconds=4.0, width=320, height=240, fps=15, kbps=300)


@pytest.fixture(scope="module")
def srv(start_server: ServerFactory) -> Iterator[ServerProcess]:
    with start_server("quality", workers=2, quality_sample_seconds=SAMPLE,
                      quality_poor_alert_seconds=POOR_ALERT) as server:
        yield server


@dataclass
class Point:
    id: str
    name: str
    token: str
    token_id: str


@dataclass
class Conf:
    """A conference: a province, two districts, three communes (two in the first district), with an
    operator token for every point and organiser, speaker and viewer tokens."""

    server: ServerProcess
    id: str
    tokens: dict[str, str] = field(default_factory=dict)
    points: dict[str, Point] = field(default_factory=dict)  # by short name

    def call(self, who: str, method: str, tail: str, body: Any = None) -> httpx.Response:
        token = self.server.admin_token if who == "admin" else (
            self.points[who].token if who in self.points else self.tokens[who])
        return http.request(method, f"{self.server.url}/api/v1/conferences/{self.id}/{tail}", json=body,
                            headers={"Authorization": f"Bearer {token}"}, timeout=15)

    def ok(self, who: str, method: str, tail: str, body: Any = None) -> Any:
        r = self.call(who, method, tail, body)
        assert r.status_code == 200, f"{who} {method} {tail}: {r.status_code} {r.text}"
        return r.json()

    def quality(self) -> dict:
        return self.ok("organiser", "GET", "quality")

    def row(self, short: str, view: dict | None = None) -> dict:
        view = view or self.quality()
        return next(p for p in view["points"] if p["point_id"] == self.points[short].id)

    def alerts(self, active: bool | None = None) -> list[dict]:
        tail = "quality/alerts" + ("" if active is None else f"?active={str(active).lower()}")
        return self.ok("organiser", "GET", tail)

    def ws(self, who: str) -> ClientConnection:
        token = self.points[who].token if who in self.points else self.tokens[who]
        return connect(self.server.url.replace("http", "ws", 1) + f"/ws/conferences/{self.id}?token={token}",
                       open_timeout=10, close_timeout=2)


TREE = (  # short name, name, level, parent
    ("province", "Tỉnh Vĩnh Phúc", "province", None),
    ("d1", "Huyện Yên Lạc", "district", "province"),
    ("c1", "Xã Tam Hồng", "commune", "d1"),
    ("c2", "Xã Đồng Văn", "commune", "d1"),
    ("d2", "Huyện Tam Dương", "district", "province"),
    ("c3", "Xã Hoàng Đan", "commune", "d2"),
)


def make_conference(server: ServerProcess) -> Conf:
    conf = Conf(server, server.create_conference("Hội nghị chất lượng đường truyền"))
    with server.admin() as c:
        base = f"/api/v1/conferences/{conf.id}"
        for role in ("organiser", "speaker", "viewer"):
            conf.tokens[role] = c.post(f"{base}/tokens", json={"role": role, "name": role}).json()["token"]
        for short, name, level, parent in TREE:
            body = {"name": name, "level": level, "parent_id": conf.points[parent].id if parent else None}
            r = c.post(f"{base}/points", json=body)
            assert r.status_code == 201, r.text
            pid = r.json()["id"]
            link = c.post(f"{base}/points/{pid}/token").json()
            conf.points[short] = Point(pid, name, link["token"], link["token_id"])
    return conf


class Listener:
    """A WebSocket client reading every message on a thread of its own (so tests on an event loop
    and blocking waits can both look at what arrived)."""

    def __init__(self, conf: Conf, who: str) -> None:
        self.ws = conf.ws(who).__enter__()
        self.messages: list[dict] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while True:
                message = json.loads(self.ws.recv())
                with self._lock:
                    self.messages.append(message)
        except (ConnectionClosed, OSError, RuntimeError):
            pass

    def send(self, message: dict) -> None:
        self.ws.send(json.dumps(message))

    def of(self, kind: str, where: Callable[[dict], bool] = lambda m: True) -> list[dict]:
        with self._lock:
            return [m for m in self.messages if m.get("type") == kind and where(m)]

    def wait(self, kind: str, where: Callable[[dict], bool] = lambda m: True, timeout: float = WAIT) -> dict:
        return wait_until(lambda: self.of(kind, where), timeout, f"a {kind} message", interval=0.05)[-1]

    def kinds(self) -> set[str]:
        with self._lock:
            return {m.get("type", "") for m in self.messages}

    def close(self) -> None:
        self.ws.close()
        self._thread.join(5)


def report(frames: int, **extra: Any) -> dict:
    """A point page's quality.report (what point.js sends every 5 s)."""
    return {"type": "quality.report", "v": 1, "session_id": None, "frames_decoded": frames, "frames_dropped": 0,
            "freeze_count": 0, "total_freeze_duration": 0.0, "jitter_buffer_delay_ms": 40.0,
            "available_incoming_bitrate": 2_500_000, "rendition": "full", **extra}


# --- the score itself ------------------------------------------------------------------------------


def test_score_thresholds() -> None:
    """Each figure is good up to its first limit (score 80 there), poor from its second (50), and
    the worst figure decides; two samples are averaged."""
    assert figure_score("loss_percent", 0) == 100 and figure_score("loss_percent", 2) == 80
    assert figure_score("loss_percent", 8) == 50 and figure_score("loss_percent", 16) == 0
    assert assess({"loss_percent": 1.0, "rtt_ms": 40, "jitter_ms": 5}).level == "good"
    fair = assess({"loss_percent": 4.0, "rtt_ms": 40})
    assert (fair.level, fair.reasons) == ("fair", ["loss_percent"])
    poor = assess({"loss_percent": 0.5, "retransmit_percent": 25.0, "freeze_percent": 5.0})
    assert poor.level == "poor" and poor.reasons == ["retransmit_percent", "freeze_percent"]
    # Audio only: the video figures do not count.
    assert assess({"retransmit_percent": 25.0, "loss_percent": 0.0}, video_expected=False).level == "good"
    assert assess({}).level is None and assess({"rtt_ms": None}).score is None
    assert smoothed([90, 40]) == (65, "fair") and smoothed([40, 30]) == (35, "poor")
    assert fps_shortfall(0.0, None) == 100.0 and fps_shortfall(15.0, 15.0) == 0.0
    assert fps_shortfall(6.0, 15.0) == 60.0 and fps_shortfall(None, 30.0) is None


# --- real subscribers ---------------------------------------------------------------------------------


def test_a_lossy_link_turns_poor_a_clean_one_stays_good(srv: ServerProcess) -> None:
    """Two points watch over WHEP, one on a link that loses every 4th video packet: it turns poor
    and raises the poor alert, the clean one stays good (both on the full rendition: the lossy one
    is pinned to it, so adaptation does not move it). The organiser's socket gets quality.changed
    (a point's score changed, with the one before), quality.sample and quality.alert, a point's
    socket none of them; the history and the speaker's state are filled; hanging up raises the
    dropped alert; the report counts minutes per rendition and poor minutes, and the roll-ups the
    share of watching points on a poor link."""
    conf = make_conference(srv)
    clean_id, lossy_id = conf.points["c3"].id, conf.points["c1"].id
    organiser, other_point = Listener(conf, "organiser"), Listener(conf, "c2")
    # Pinned to the full rendition (before it joins: the pin holds for its later sessions), so
    # adaptation does not take the lossy point off the rendition whose link this test measures.
    assert conf.ok("organiser", "POST", f"points/{lossy_id}/rendition", {"rendition": "full"})["sessions"] == 0

    async def scenario() -> None:
        speaker = await publish(srv.url, conf.id, conf.tokens["speaker"], small_clip())
        clean = await subscribe(srv.url, conf.id, conf.points["c3"].token)
        lossy = await subscribe(srv.url, conf.id, conf.points["c1"].token, drop_every=4)
        try:
            assert await clean.wait_frames(10, WAIT), "the clean point decodes no video"
            view = await asyncio.to_thread(
                wait_until, conf.quality, WAIT, "the lossy point poor and the clean one good",
                check=lambda v: conf.row("c1", v)["score"] == "poor" and conf.row("c3", v)["score"] == "good"
                and conf.row("c3", v)["figures"]["bitrate_kbps"] is not None,  # (a rate needs two samples)
                interval=0.5,
            )
            lossy_row, clean_row = conf.row("c1", view), conf.row("c3", view)
            assert view["points"][0]["point_id"] == lossy_id, "worst first"
            assert lossy_row["status"] == "watching" and lossy_row["rendition"] == "full"
            assert lossy_row["pinned"] == "full" and clean_row["pinned"] is None
            figures = lossy_row["figures"]
            assert (figures.get("retransmit_percent") or 0) >= 10 or (figures.get("loss_percent") or 0) >= 8, figures
            assert lossy_row["score_value"] <= 50 and lossy_row["reasons"], lossy_row
            assert clean_row["score_value"] >= 80 and (clean_row["figures"]["loss_percent"] or 0) < 2, clean_row
            assert clean_row["figures"]["bitrate_kbps"] > 100, clean_row  # the 300 kbit/s clip and its audio
            assert 0 <= clean_row["figures"]["rtt_ms"] < 500, clean_row
            offline = conf.row("c2", view)
            assert (offline["status"], offline["score"], offline["rendition"]) == ("connected", None, None)

            speaker_state = view["speaker"]
            assert speaker_state["live"] and (speaker_state["width"], speaker_state["height"]) == (320, 240)
            assert 10 <= speaker_state["fps"] <= 20 and speaker_state["bitrate_kbps"] > 100, speaker_state
            assert 0.5 <= speaker_state["keyframe_interval_seconds"] <= 2.5, speaker_state
            assert speaker_state["loss_percent"] < 1, speaker_state
            recording = speaker_state["recording"]
            assert recording["state"] == "recording" and recording["size_bytes"] > 0, recording

            alert = await asyncio.to_thread(
                organiser.wait, "quality.alert", lambda m: m["alert"]["kind"] == "poor", POOR_ALERT + WAIT)
            assert alert["alert"]["point_id"] == lossy_id and alert["alert"]["active"]
            assert alert["alert"]["point_name"] == conf.points["c1"].name
            assert [a["kind"] for a in conf.alerts(active=True) if a["point_id"] == lossy_id] == ["poor"]
            assert conf.row("c1")["alerts"] == ["poor"]
            assert not [a for a in conf.alerts() if a["point_id"] == clean_id]

            changed = organiser.of("quality.changed", lambda m: m["point_id"] == lossy_id)
            assert changed and all(m["v"] == 1 for m in changed)
            turned = [(m["previous"], m["score"]) for m in changed]
            assert turned[-1][1] == "poor" and all(before != after for before, after in turned), turned
            assert changed[-1]["name"] == conf.points["c1"].name and changed[-1]["score_value"] <= 50
            clean_scores = [m["score"] for m in organiser.of("quality.changed", lambda m: m["point_id"] == clean_id)]
            assert clean_scores[-1] == "good" and "poor" not in clean_scores, clean_scores
            samples = organiser.of("quality.sample")
            assert {p["point_id"] for m in samples for p in m["points"]} >= {lossy_id, clean_id}

            history = conf.ok("organiser", "GET", f"quality/points/{lossy_id}/history")
            assert history["interval_seconds"] == SAMPLE and len(history["samples"]) >= 3
            assert "poor" in [s["score"] for s in history["samples"]]
            assert all(s["bitrate_kbps"] is None or s["bitrate_kbps"] >= 0 for s in history["samples"])
            assert any((s["retransmit_percent"] or 0) >= 10 or (s["loss_percent"] or 0) >= 8 for s in history["samples"])
            good = conf.ok("organiser", "GET", f"quality/points/{clean_id}/history")["samples"]
            assert good[-1]["score"] == "good" and good[-1]["rendition"] == "full"
            assert conf.ok("organiser", "GET", f"quality/points/{conf.points['c2'].id}/history")["samples"] == []
            r = conf.call("organiser", "GET", "quality/points/0123456789abcdef/history")
            assert r.status_code == 404 and "unknown point" in r.json()["detail"], r.text

            await lossy.close()  # the lossy point drops off
            dropped = await asyncio.to_thread(
                organiser.wait, "quality.alert", lambda m: m["alert"]["kind"] == "dropped", WAIT)
            assert dropped["alert"]["point_id"] == lossy_id
            ended = await asyncio.to_thread(
                organiser.wait, "quality.alert", lambda m: m["alert"]["kind"] == "poor" and not m["alert"]["active"])
            assert ended["alert"]["ended_at"]
            assert conf.row("c1")["status"] != "watching"
        finally:
            await lossy.close()
            await clean.close()
            await speaker.close()

    try:
        asyncio.run(scenario())
        assert not {k for k in other_point.kinds() if k.startswith("quality.")}, other_point.kinds()
        assert not other_point.of("rendition.changed")
    finally:
        organiser.close()
        other_point.close()

    report = conf.ok("organiser", "GET", "attendance/report")
    lines = {p["id"]: p for p in report["points"]}
    clean_line, lossy_line = lines[clean_id], lines[lossy_id]
    assert clean_line["minutes_full"] > 0 and clean_line["minutes_poor"] == 0 and not clean_line["poor_link"]
    assert clean_line["minutes_low"] == clean_line["minutes_audio"] == 0
    assert lossy_line["minutes_poor"] > 0 and lossy_line["poor_link"], lossy_line
    assert lossy_line["minutes_watched"] >= lossy_line["minutes_poor"]
    assert not lines[conf.points["c2"].id]["watched"]
    parents = {p["id"]: p for p in report["by_parent"]}
    district = parents[conf.points["d1"].id]  # the lossy point and a point that never watched
    assert (district["points_watched"], district["poor_links"], district["poor_share"]) == (1, 1, 100.0)
    assert parents[conf.points["d2"].id]["poor_share"] == 0.0
    province = parents[conf.points["province"].id]
    assert (province["points_watched"], province["poor_links"], province["poor_share"]) == (2, 1, 50.0)
    communes = next(r for r in report["by_level"] if r["level"] == "commune")
    assert (communes["points_watched"], communes["poor_links"]) == (2, 1)
    assert report["totals"]["poor_share"] == 50.0
    assert [p["name"] for p in report["quality"]["points"]] == [conf.points["c1"].name, conf.points["c3"].name]

    r = conf.call("organiser", "GET", "attendance/report.csv?table=quality")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][:4] == ["name", "level", "parent", "minutes_watched"] and rows[0][-1] == "poor_link"
    assert [row[0] for row in rows[1:]] == [conf.points["c1"].name, conf.points["c3"].name]
    assert rows[1][2] == conf.points["d1"].name and rows[1][-1] == "True"
    r = conf.call("organiser", "GET", "attendance/report.csv?table=quality_rollup")
    rollup = {row[0]: row for row in csv.reader(io.StringIO(r.content.decode("utf-8-sig")))}
    assert rollup[conf.points["d1"].name][2:5] == ["1", "1", "100.0%"]
    assert rollup["total"][2:5] == ["2", "1", "50.0%"]
    html = conf.call("organiser", "GET", "attendance/report.html").text
    assert "Link quality per point" in html and "Points with a poor link" in html
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIEMCAU_")}
    env.update({"DIEMCAU_URL": srv.url, "DIEMCAU_TOKEN": conf.tokens["organiser"], "PYTHONIOENCODING": "utf-8"})
    cli = subprocess.run([sys.executable, "-m", "server.cli", "report", conf.id], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert "Poor links: 1 of 2 points watching (50.0%)" in cli.stdout, cli.stdout
    assert f"  {conf.points['d1'].name} (district): 1 of 1 (100.0%)" in cli.stdout, cli.stdout


# --- what the page reports ---------------------------------------------------------------------------


def test_page_reports_freeze_alert_and_refusals(srv: ServerProcess) -> None:
    """A point page whose frames stop advancing while the hall is live raises the frozen alert after
    5 s, and its quality turns poor; frames moving again end the alert. Reports are acknowledged
    with the rendition and the pin; malformed ones and other roles' are refused on the socket."""
    conf = make_conference(srv)
    point_id = conf.points["c2"].id
    speaker = BackgroundPublisher(srv.url, conf.id, conf.tokens["speaker"], small_clip()).start()
    organiser, point, viewer = Listener(conf, "organiser"), Listener(conf, "c2"), Listener(conf, "viewer")
    try:
        wait_until(lambda: conf.quality()["speaker"]["live"], WAIT, "the hall live")
        for bad, why in (
            ({"frames_decoded": -1}, "frames_decoded"),
            ({"frames_decoded": "many"}, "frames_decoded"),
            ({"rendition": "medium"}, "rendition"),
            ({"session_id": 7}, "session_id"),
            ({"v": 2}, "version"),
        ):
            point.send(report(10, **bad))
            error = point.wait("error", lambda m, why=why: why in m["detail"])
            assert (error["for"], error["status"]) == ("quality.report", 422)
        viewer.send(report(10))
        error = viewer.wait("error")
        assert (error["for"], error["status"]) == ("quality.report", 403) and "connection point" in error["detail"]
        organiser.send({"type": "rendition.pin", "rendition": "low"})
        assert organiser.wait("error")["status"] == 403

        frames = 100
        point.send(report(frames))
        ack = point.wait("quality.ack")
        assert ack == {"type": "quality.ack", "v": 1, "session_id": None, "rendition": "full", "pinned": None}
        for _ in range(2):  # playing
            time.sleep(1.0)
            frames += 15
            point.send(report(frames))
        stopped_at = time.monotonic()
        alert = None
        while alert is None and time.monotonic() - stopped_at < WAIT:
            time.sleep(1.0)
            point.send(report(frames, freeze_count=0))  # the picture stands still
            found = organiser.of("quality.alert", lambda m: m["alert"]["kind"] == "frozen")
            alert = found[-1] if found else None
        assert alert is not None, "no frozen alert"
        assert time.monotonic() - stopped_at > 4.0, "the frozen alert came before 5 s without a frame"
        assert alert["alert"]["point_id"] == point_id and alert["alert"]["active"]
        assert "no new frame" in alert["alert"]["detail"]
        row = wait_until(lambda: conf.row("c2"), WAIT, "the frozen point poor",
                         check=lambda r: r["score"] == "poor", interval=0.5)
        assert row["status"] == "connected" and row["figures"]["fps"] == 0.0 and "frozen" in row["alerts"]
        assert row["figures"]["freeze_seconds"] > 4

        for _ in range(3):  # frames again; the freeze that ended is counted
            time.sleep(1.0)
            frames += 15
            point.send(report(frames, freeze_count=1, total_freeze_duration=6.5))
        ended = organiser.wait("quality.alert", lambda m: m["alert"]["kind"] == "frozen" and not m["alert"]["active"])
        assert ended["alert"]["id"] == alert["alert"]["id"]
        assert not conf.row("c2")["alerts"] or "frozen" not in conf.row("c2")["alerts"]
        assert [a["kind"] for a in conf.alerts(active=False) if a["point_id"] == point_id] == ["frozen"]
        # A point's own socket gets the acks, never the organisers' quality events.
        assert not {k for k in point.kinds() if k.startswith("quality.") and k != "quality.ack"}
        assert not {k for k in viewer.kinds() if k.startswith("quality.")}
    finally:
        for listener in (organiser, point, viewer):
            listener.close()
        speaker.stop()
    line = next(p for p in conf.ok("organiser", "GET", "attendance/report")["points"] if p["id"] == point_id)
    assert line["freezes"] == 1 and line["freeze_seconds"] == 6.5
    assert line["minutes_watched"] == 0  # reports alone are not watching


# --- pinning a rendition -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def point_watching(srv: ServerProcess, conf: Any, point: Any) -> AsyncIterator[tuple[Any, str]]:
    """The speaker publishing and ``point`` watching it over WHEP, decoding: (its subscriber, session id)."""
    speaker = await publish(srv.url, conf.id, conf.tokens["speaker"], small_clip())
    watcher = await subscribe(srv.url, conf.id, point.token)
    try:
        assert await watcher.wait_frames(10, WAIT), "the point decodes no video"
        yield watcher, watcher.location.rstrip("/").rsplit("/", 1)[-1]
    finally:
        await watcher.close()
        await speaker.close()


def media_consumer(server: ServerProcess, session_id: str) -> dict:
    with server.admin() as c:
        return c.get("/api/v1/media/stats").json()["consumers"].get(session_id) or {}


def test_pinning_a_points_rendition(srv: ServerProcess) -> None:
    """The organiser pins a point to audio only: its session stops getting video and keeps its
    audio, the page's socket hears of its own session's change, the audio-only alert is raised;
    the page gives the choice back to adaptation (rendition.pin null) and video returns. A pin holds
    for the point's later sessions. Bad pins are refused."""
    conf = make_conference(srv)
    point, other = conf.points["c3"], conf.points["c1"]
    page, other_page = Listener(conf, "c3"), Listener(conf, "c1")

    async def scenario() -> None:
        async with point_watching(srv, conf, point) as (watcher, session):
            pinned = conf.ok("organiser", "POST", f"points/{point.id}/rendition", {"rendition": "audio"})
            assert pinned == {"point_id": point.id, "pinned": "audio", "sessions": 1}
            stats = await asyncio.to_thread(
                wait_until, lambda: media_consumer(srv, session), WAIT, "the session on audio only",
                check=lambda s: s.get("rendition") == "audio")
            assert stats["pinned"] == "audio"
            changed = await asyncio.to_thread(page.wait, "rendition.changed")
            assert changed["rendition"] == "audio" and changed["session_id"] == session
            assert "token_id" not in changed and "subject_id" not in changed
            frames, audio = watcher.frames, watcher.audio_frames
            await asyncio.sleep(2.0)
            assert watcher.frames - frames <= 2, "video still arrives on audio only"
            assert watcher.audio_frames - audio >= 50, "the audio stopped"
            row = await asyncio.to_thread(wait_until, lambda: conf.row("c3"), WAIT, "the pin on the dashboard",
                                          check=lambda r: r["rendition"] == "audio" and "audio_only" in r["alerts"])
            assert row["pinned"] == "audio"
            [alert] = [a for a in conf.alerts(active=True) if a["point_id"] == point.id]
            assert (alert["kind"], alert["detail"]) == ("audio_only", "pinned")

            page.send({"type": "rendition.pin", "rendition": None})  # the operator: automatic again
            reply = await asyncio.to_thread(page.wait, "rendition.pinned")
            assert reply == {"type": "rendition.pinned", "v": 1, "rendition": None, "sessions": 1}
            await asyncio.to_thread(wait_until, lambda: media_consumer(srv, session), WAIT, "video again",
                                    check=lambda s: s.get("rendition") == "full" and s.get("pinned") is None)
            frames = watcher.frames
            assert await watcher.wait_frames(frames + 10, WAIT), "video did not come back"
            page.send({"type": "rendition.pin", "rendition": "medium"})
            error = await asyncio.to_thread(page.wait, "error")
            assert (error["for"], error["status"]) == ("rendition.pin", 422)

            # A pin holds for the sessions the point opens later.
            conf.ok("organiser", "POST", f"points/{point.id}/rendition", {"rendition": "low"})
            await watcher.close()
            again = await subscribe(srv.url, conf.id, point.token)
            try:
                later = again.location.rstrip("/").rsplit("/", 1)[-1]
                stats = await asyncio.to_thread(
                    wait_until, lambda: media_consumer(srv, later), WAIT, "the new session pinned",
                    check=lambda s: s.get("pinned") == "low")
                assert stats["rendition"] == "low"
            finally:
                await again.close()

    try:
        asyncio.run(scenario())
        assert not other_page.of("rendition.changed"), "another point heard of this point's rendition"
    finally:
        page.close()
        other_page.close()
    for body in ({"rendition": "medium"}, {"rendition": 3}, {}):
        assert conf.call("organiser", "POST", f"points/{point.id}/rendition", body).status_code == 422, body
    r = conf.call("organiser", "POST", "points/0123456789abcdef/rendition", {"rendition": None})
    assert r.status_code == 404 and "unknown point" in r.json()["detail"], r.text
    for who in ("speaker", "viewer", "c3"):
        assert conf.call(who, "POST", f"points/{other.id}/rendition", {"rendition": None}).status_code == 403, who
        assert conf.call(who, "GET", "quality").status_code == 403, who
    assert conf.row("c3")["pinned"] == "low"


def test_a_page_frozen_in_two_reports_takes_its_session_to_low(srv: ServerProcess) -> None:
    """A point whose page says its picture stood still (frames not advancing) in two reports in a row
    is moved to the low rendition by adaptation, on a clean link: its decoder or its link cannot keep
    up with full. Reports naming another session move nothing."""
    conf = make_conference(srv)
    point = conf.points["c2"]
    page = Listener(conf, "c2")

    async def scenario() -> None:
        async with point_watching(srv, conf, point) as (_, session):
            for _ in range(4):  # another session's page stands still: nothing moves here
                page.send(report(100, session_id="0" * 32))
                await asyncio.sleep(1.0)
            stats = media_consumer(srv, session)
            assert stats["rendition"] == "full" and stats["adaptation"]["frozen"] == 0, stats["adaptation"]
            for _ in range(2):
                page.send(report(100, session_id=session))  # the same frame count: frozen
                await asyncio.to_thread(page.wait, "quality.ack", lambda m: m["session_id"] == session)
                await asyncio.sleep(1.0)
            page.send(report(100, session_id=session))
            stats = await asyncio.to_thread(
                wait_until, lambda: media_consumer(srv, session), WAIT, "the frozen session on low",
                check=lambda s: s.get("rendition") == "low")
            assert stats["pinned"] is None and stats["adaptation"]["level"] == "low", stats["adaptation"]
            changed = await asyncio.to_thread(page.wait, "rendition.changed")
            assert (changed["rendition"], changed["session_id"]) == ("low", session)

    try:
        asyncio.run(scenario())
    finally:
        page.close()


# --- restart -----------------------------------------------------------------------------------------


def test_minutes_pins_and_alerts_survive_a_crash(srv: ServerProcess) -> None:
    """What the report needs is stored as it is measured: after the server is killed (-9) while a
    point watches, the minutes measured are still there and the pin holds; the alert open at the
    crash is closed at start-up (nothing measured before still holds)."""
    conf = make_conference(srv)
    point = conf.points["c1"]

    def line() -> dict:
        return next(p for p in conf.ok("organiser", "GET", "attendance/report")["points"] if p["id"] == point.id)

    async def watch_then_crash() -> dict:
        conf.ok("organiser", "POST", f"points/{point.id}/rendition", {"rendition": "audio"})
        speaker = await publish(srv.url, conf.id, conf.tokens["speaker"], small_clip())
        watcher = await subscribe(srv.url, conf.id, point.token)
        try:
            [alert] = await asyncio.to_thread(wait_until, lambda: conf.alerts(active=True), WAIT, "the audio-only alert")
            assert (alert["kind"], alert["detail"]) == ("audio_only", "pinned")
            stored = await asyncio.to_thread(wait_until, line, WAIT, "minutes stored",
                                             check=lambda x: x["minutes_audio"] > 0)
            srv.kill9()
            return stored
        finally:
            await watcher.close()
            await speaker.close()

    before = asyncio.run(watch_then_crash())
    srv.start()
    after = line()
    assert before["minutes_audio"] <= after["minutes_audio"] <= before["minutes_audio"] + 0.1, (before, after)
    assert after["minutes_full"] == after["minutes_low"] == 0 and after["minutes_watched"] == after["minutes_audio"]
    row = conf.row("c1")
    assert row["pinned"] == "audio" and row["status"] == "offline" and row["score"] is None
    [alert] = [a for a in conf.alerts() if a["point_id"] == point.id]
    assert (alert["kind"], alert["active"]) == ("audio_only", False) and alert["ended_at"]
