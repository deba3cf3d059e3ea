"""Crash safety and retention with a server of the test's own.

The speaker publishes, reconnects (the recording continues behind a discontinuity), and the server is
killed with SIGKILL mid-recording. After a restart the recording is listed as interrupted, its VOD
playlist holds every complete segment of both takes, and it plays and downloads. A further restart
with a retention of 0 days deletes it.
"""

from __future__ import annotations

import httpx
import pytest

from media.recording.playlist import parse
from tests.support.background import BackgroundPublisher
from tests.support.hls_probe import duration, ffprobe
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until
from tests.support.mp4_download import fetch_mp4

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out


def _live_text(server: ServerProcess, conference: str, token: str) -> str:
    r = httpx.get(f"{server.url}/hls/{conference}/index.m3u8", params={"token": token}, timeout=10)
    return r.text if r.status_code == 200 else ""


def test_kill9_mid_recording_leaves_a_playable_interrupted_recording(fresh_server: ServerProcess) -> None:
    server = fresh_server
    conference = server.create_conference("Crash")
    speaker, viewer = server.token(conference, "speaker"), server.token(conference, "viewer")

    first = BackgroundPublisher(server.url, conference, speaker).start()
    wait_until(lambda: _live_text(server, conference, viewer).count("#EXTINF") >= 1, 20, "first take")
    first.stop()
    second = BackgroundPublisher(server.url, conference, speaker).start()
    text = wait_until(
        lambda: (t := _live_text(server, conference, viewer)).split("#EXT-X-DISCONTINUITY\n")[-1].count("#EXTINF") >= 2
        and "#EXT-X-DISCONTINUITY\n" in t
        and t,
        25,
        "the second take behind a discontinuity",
    )
    live_segments = len(parse(text)[0])
    with server.admin() as c:
        current = c.get(f"/api/v1/conferences/{conference}/recording").json()
        assert current["status"] == "recording" and current["live"] and current["download_url"] is None
        assert c.delete(f"/api/v1/recordings/{current['id']}").status_code == 409
    server.kill9()
    second.stop()

    server.start()
    with server.admin() as c:
        listing = c.get("/api/v1/recordings", params={"conference_id": conference}).json()
        assert len(listing) == 1
        item = listing[0]
        assert item["status"] == "interrupted" and not item["live"]
        assert item["segment_count"] >= live_segments
        assert item["ended_at"] is not None and item["size_bytes"] > 0
        detail = c.get(f"/api/v1/recordings/{item['id']}").json()

    url = server.url + detail["playlist_url"]
    vod = httpx.get(url, timeout=10).text
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in vod and vod.rstrip().endswith("#EXT-X-ENDLIST")
    assert vod.count("#EXT-X-DISCONTINUITY\n") == 1
    segments = parse(vod)[0]
    assert sum(s.duration for s in segments) == pytest.approx(item["duration_seconds"], abs=0.01)
    assert duration(url) == pytest.approx(item["duration_seconds"], abs=0.3)
    decoded = ffprobe(url, "stream=codec_type,nb_read_frames", "-count_frames")
    video = next(s for s in decoded["streams"] if s["codec_type"] == "video")
    assert int(video["nb_read_frames"]) >= 25 * item["duration_seconds"]  # every segment decodes

    with httpx.Client(base_url=server.url, timeout=60) as c:
        r = fetch_mp4(c, detail["download_url"])  # made on the first request (202), then served
    assert r.content[4:8] == b"ftyp"

    # Retention at start-up: 0 days keeps nothing that is not being recorded.
    server.kill9()
    server.extra_env["DIEMCAU_RETENTION_DAYS"] = "0"
    server.start()
    with server.admin() as c:
        assert c.get("/api/v1/recordings", params={"conference_id": conference}).json() == []
    assert not (server.data_dir / "recordings" / conference / item["id"]).exists()
    server.kill9()  # nothing left to shut down gracefully
