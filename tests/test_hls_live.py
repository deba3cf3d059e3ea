"""End to end: a speaker publishes 20 s of the test clip over WHIP; the server records it as HLS.

One publish serves every test in this module (they run in file order): the live playlist advances,
segments are H.264 1280x720 + AAC, Chromium plays the live stream with hls.js, the organiser marks
chapters, the VOD playlist and the MP4 download cover the whole publish, and the replay page plays
and jumps to a chapter.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from media.recording.playlist import parse
from tests.support.background import BackgroundPublisher
from tests.support.hls_probe import duration, ffprobe, streams, tone_onset
from tests.support.mp4_download import fetch_mp4
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until
from tests.support.threaded_browser import Page, with_page

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out

PUBLISH_SECONDS = 20.0
SEGMENT = 2.0  # settings.hls_segment_seconds default


@dataclass
class Scenario:
    server: ServerProcess
    conference: str
    tokens: dict[str, str]
    publisher: BackgroundPublisher
    state: dict = field(default_factory=dict)

    def client(self, role: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=30)

    def live_playlist(self, **params: str) -> httpx.Response:
        with self.client() as c:
            return c.get(f"/hls/{self.conference}/index.m3u8", params=params)


@pytest.fixture(scope="module")
def live(server: ServerProcess):  # type: ignore[no-untyped-def]
    conference = server.create_conference("Hội nghị HLS")
    tokens = {role: server.token(conference, role, name=role) for role in ("speaker", "viewer", "member", "organiser")}
    other = server.create_conference("Another conference")
    tokens["stranger"] = server.token(other, "viewer")
    publisher = BackgroundPublisher(server.url, conference, tokens["speaker"]).start()
    scenario = Scenario(server, conference, tokens, publisher)
    yield scenario
    publisher.stop()


def _wait_segments(live: Scenario, count: int, timeout: float) -> str:
    def playlist() -> str:
        r = live.live_playlist(token=live.tokens["viewer"])
        assert r.status_code in (200, 404), r.text  # 404: "not live yet"
        return r.text if r.status_code == 200 else ""

    return wait_until(playlist, timeout, f"the live playlist to reach {count} segments", interval=0.25,
                      check=lambda text: text.count("#EXTINF") >= count)


def test_live_playlist_advances_and_is_authorised(live: Scenario) -> None:
    first = _wait_segments(live, 2, timeout=20)
    assert "#EXT-X-ENDLIST" not in first
    segs = parse(first)[0]
    last = segs[-1].uri
    time.sleep(SEGMENT + 1.0)
    second = _wait_segments(live, len(segs) + 1, timeout=10)
    assert parse(second)[0][-1].uri != last  # a newer segment at the live edge

    assert live.live_playlist().status_code == 401
    assert live.live_playlist(token="nonsense").status_code == 401
    assert live.live_playlist(token=live.tokens["stranger"]).status_code == 403
    # Segment URIs are signed: they work without a token, and not without the signature.
    uri = [line for line in second.splitlines() if line.endswith(".m4s") or ".m4s?" in line][-1]
    with live.client() as c:
        assert c.get(f"/hls/{live.conference}/{uri}").status_code == 200
        assert c.get(f"/hls/{live.conference}/{uri.split('?')[0]}").status_code == 401
        assert c.get(f"/hls/{live.conference}/{uri.replace('sig=', 'sig=0')}").status_code == 401
    live.state["recording"] = uri.split("/")[0]

    # A signed live link for a TV: no token needed, scoped to this conference's live playlist.
    with live.client("organiser") as c:
        link = c.post(f"/api/v1/conferences/{live.conference}/hls-link", json={"hours": 2}).json()
    assert "token" not in link["playlist_url"] and "#conference=" in link["viewer_url"]
    assert httpx.get(link["playlist_url"], timeout=10).status_code == 200
    with live.client("viewer") as c:
        assert c.post(f"/api/v1/conferences/{live.conference}/hls-link", json={}).status_code == 403


def test_segments_are_h264_720p_and_aac(live: Scenario, tmp_path: Path) -> None:
    text = live.live_playlist(token=live.tokens["viewer"]).text
    init = next(line.split('"')[1] for line in text.splitlines() if line.startswith("#EXT-X-MAP"))
    media = [line for line in text.splitlines() if line and not line.startswith("#")][-1]
    with live.client() as c:
        data = c.get(f"/hls/{live.conference}/{init}").content + c.get(f"/hls/{live.conference}/{media}").content
    path = tmp_path / "segment.mp4"
    path.write_bytes(data)
    s = streams(path)
    assert s["video"]["codec_name"] == "h264"
    assert (s["video"]["width"], s["video"]["height"]) == (1280, 720)
    assert s["audio"]["codec_name"] == "aac"
    assert s["audio"]["channels"] == 1  # the default AudioProfile: speech, mono
    frames = ffprobe(path, "stream=nb_read_frames", "-count_frames", "-select_streams", "v")
    assert int(frames["streams"][0]["nb_read_frames"]) >= 30  # a whole segment decodes


@pytest.mark.browser
def test_viewer_page_plays_live(live: Scenario) -> None:
    def check(page: Page) -> list:
        page.wait_until("window.Hls && Hls.isSupported()", timeout=10, what="hls.js loaded")
        start = page.wait_until(
            "(() => { const v = document.getElementById('video'); return v.currentTime > 0.5 && v.currentTime; })()",
            timeout=25,
            what="live playback",
        )
        size = page.wait_until(
            "(() => { const v = document.getElementById('video'); return v.videoWidth && [v.videoWidth, v.videoHeight]; })()",
            timeout=10,
        )
        page.wait_until(f"document.getElementById('video').currentTime > {start + 1.0}", timeout=10, what="time advances")
        assert page.evaluate("!!window.viewer.hls && !window.viewer.ended")
        return size

    url = f"{live.server.url}/viewer.html#conference={live.conference}&token={live.tokens['viewer']}"
    assert with_page(url, check) == [1280, 720]

    # The organiser marks a chapter live: it lands at the current recording position.
    with live.client("organiser") as c:
        r = c.post(f"/api/v1/conferences/{live.conference}/recording/chapters", json={"title": "Chủ đề 1: kinh tế"})
    assert r.status_code == 201, r.text
    at = r.json()["at_seconds"]
    assert 3.0 < at <= live.publisher.elapsed() + 0.5
    live.state["live_chapter"] = r.json()


def test_vod_playlist_covers_the_whole_publish(live: Scenario, tmp_path: Path) -> None:
    remaining = PUBLISH_SECONDS - live.publisher.elapsed()
    if remaining > 0:
        time.sleep(remaining)
    sent = live.publisher.stop()
    assert sent >= PUBLISH_SECONDS - 1
    with live.client("organiser") as c:
        r = c.post(f"/api/v1/conferences/{live.conference}/recording/stop")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "complete" and not r.json()["live"]
    recording_id = r.json()["id"]
    assert recording_id == live.state.get("recording", recording_id)

    with live.client("viewer") as c:
        detail = c.get(f"/api/v1/recordings/{recording_id}").json()
    live.state["detail"] = detail
    url = live.server.url + detail["playlist_url"]
    text = httpx.get(url, timeout=10).text
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in text and text.rstrip().endswith("#EXT-X-ENDLIST")
    segments = parse(text)[0]
    recorded = sum(s.duration for s in segments)
    assert abs(recorded - sent) < SEGMENT, (recorded, sent)
    assert detail["duration_seconds"] == pytest.approx(recorded, abs=0.01)
    assert duration(url) == pytest.approx(recorded, abs=0.2)

    s = streams(url)
    assert abs(float(s["audio"]["start_time"]) - float(s["video"]["start_time"])) < 0.1
    # The clip's tone starts with its first video frame: in the recording it must too.
    local = tmp_path / "start.mp4"
    local.write_bytes(
        httpx.get(url.replace("index.m3u8", segments[0].map_uri), timeout=10).content
        + httpx.get(url.replace("index.m3u8", segments[0].uri), timeout=10).content
    )
    onset = tone_onset(local)
    assert onset is not None and onset < 0.1, onset
    # The live URL still answers for a while, now with ENDLIST, so players stop cleanly.
    assert live.live_playlist(token=live.tokens["viewer"]).text.rstrip().endswith("#EXT-X-ENDLIST")


def test_mp4_download(live: Scenario, tmp_path: Path) -> None:
    detail = live.state["detail"]
    with live.client() as c:
        r = fetch_mp4(c, detail["download_url"])  # 202 while it is made, then the file
        assert "attachment" in r.headers["content-disposition"]
        assert c.get(f"/recordings/{detail['id']}/download.mp4").status_code == 401
        assert c.get(f"/recordings/{detail['id']}/download.mp4", params={"token": live.tokens["member"]}).status_code == 200
    path = tmp_path / "download.mp4"
    path.write_bytes(r.content)
    assert r.content[4:8] == b"ftyp" and b"moov" in r.content[:200]  # faststart
    info = ffprobe(path, "stream=codec_name,width,height:format=duration")
    assert sorted(s["codec_name"] for s in info["streams"]) == ["aac", "h264"]
    assert float(info["format"]["duration"]) == pytest.approx(detail["duration_seconds"], abs=0.2)


def test_archive_lists_the_recording_with_chapters(live: Scenario) -> None:
    rid = live.state["detail"]["id"]
    with live.client("organiser") as c:
        r = c.post(f"/api/v1/recordings/{rid}/chapters", json={"title": "Chương trình hành động", "at_seconds": 12.0})
        assert r.status_code == 201, r.text
        assert c.post(f"/api/v1/recordings/{rid}/chapters", json={"title": "x"}).status_code == 422
    with live.client("member") as c:
        listing = c.get("/api/v1/recordings").json()
        assert c.post(f"/api/v1/recordings/{rid}/chapters", json={"title": "x", "at_seconds": 1}).status_code == 403
        detail = c.get(f"/api/v1/recordings/{rid}").json()
    item = next(i for i in listing if i["id"] == rid)
    assert item["conference_id"] == live.conference and item["status"] == "complete"
    assert item["size_bytes"] > 1_000_000 and item["duration_seconds"] > PUBLISH_SECONDS - 2
    assert {c["title"] for c in detail["chapters"]} == {"Chủ đề 1: kinh tế", "Chương trình hành động"}
    assert [c["at_seconds"] for c in detail["chapters"]] == sorted(c["at_seconds"] for c in detail["chapters"])
    with live.client("stranger") as c:
        assert c.get(f"/api/v1/recordings/{rid}").status_code == 403
        assert all(i["conference_id"] != live.conference for i in c.get("/api/v1/recordings").json())
    live.state["detail"] = detail


@pytest.mark.browser
def test_replay_page_plays_and_jumps_to_a_chapter(live: Scenario) -> None:
    def check(page: Page) -> tuple:
        page.wait_until("document.querySelectorAll('#chapters button').length === 2", timeout=10, what="chapters")
        page.evaluate("document.getElementById('video').muted = true; document.getElementById('video').play()")
        page.wait_until("document.getElementById('video').currentTime > 1.0", timeout=20, what="replay playback")
        size = page.evaluate("[document.getElementById('video').videoWidth, document.getElementById('video').videoHeight]")
        page.locator("#chapters button", has_text="Chương trình hành động").click()
        landed = page.wait_until(
            "(() => { const v = document.getElementById('video');"
            " return !v.seeking && v.readyState >= 2 && v.currentTime >= 12 && v.currentTime; })()",
            timeout=15,
            what="seek to the chapter",
        )
        page.wait_until(f"document.getElementById('video').currentTime > {landed + 0.5}", timeout=10, what="plays on")
        page.select_option("#speed", "1.5")
        return size, landed, page.evaluate("document.getElementById('video').playbackRate")

    rid = live.state["detail"]["id"]
    url = f"{live.server.url}/replay.html#recording={rid}&token={live.tokens['member']}"
    size, landed, rate = with_page(url, check)
    assert size == [1280, 720]
    assert 12.0 <= landed < 14.0
    assert rate == 1.5


def test_organiser_deletes_chapters_and_recordings(live: Scenario) -> None:
    rid = live.state["detail"]["id"]
    chapter = live.state["detail"]["chapters"][-1]["id"]
    with live.client("organiser") as c:
        assert c.delete(f"/api/v1/recordings/{rid}/chapters/{chapter}").status_code == 204
        assert c.delete(f"/api/v1/recordings/{rid}/chapters/{chapter}").status_code == 404
        assert len(c.get(f"/api/v1/recordings/{rid}").json()["chapters"]) == 1
    with live.client("member") as c:
        assert c.delete(f"/api/v1/recordings/{rid}").status_code == 403
    with live.client("organiser") as c:
        assert c.delete(f"/api/v1/recordings/{rid}").status_code == 204
        assert c.get(f"/api/v1/recordings/{rid}").status_code == 404
    assert not (live.server.data_dir / "recordings" / live.conference / rid).exists()
