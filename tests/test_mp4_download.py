"""The MP4 download never holds a request while it remuxes: 202 with ``Location`` and the progress,
then the file (a real server, a real WHIP publish recorded as HLS, ffprobe on what comes back)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from media.recording.remux import remux_to_mp4
from server.domain.mp4_builds import RemuxStopped
from tests.support.background import BackgroundPublisher
from tests.support.hls_probe import ffprobe
from tests.support.mp4_download import fetch_mp4
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # a publish of a few seconds

SEGMENTS = 3


@dataclass
class Recorded:
    server: ServerProcess
    conference: str
    recording: str
    duration: float
    member: str

    def url(self) -> str:
        return f"/recordings/{self.recording}/download.mp4"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=30,
                            headers={"Authorization": f"Bearer {self.member}"})

    def directory(self) -> Path:
        return self.server.data_dir / "recordings" / self.conference / self.recording


@pytest.fixture(scope="module")
def recorded(single_server: ServerProcess) -> Iterator[Recorded]:
    """A recording of a few segments: live (the download refused) until stopped."""
    conference = single_server.create_conference("Tải MP4")
    speaker, member = single_server.token(conference, "speaker"), single_server.token(conference, "member")
    publisher = BackgroundPublisher(single_server.url, conference, speaker).start()
    try:
        with single_server.admin() as admin:
            current = wait_until(
                lambda: admin.get(f"/api/v1/conferences/{conference}/recording").json(), 30,
                f"{SEGMENTS} recorded segments", interval=0.25,
                check=lambda d: d.get("segment_count", 0) >= SEGMENTS,
            )
            with httpx.Client(base_url=single_server.url, timeout=30) as c:
                busy = c.get(f"/recordings/{current['id']}/download.mp4", params={"token": member})
            assert busy.status_code == 409 and "still being written" in busy.text, busy.text
            stopped = admin.post(f"/api/v1/conferences/{conference}/recording/stop")
            assert stopped.status_code == 200, stopped.text
    finally:
        publisher.stop()
    yield Recorded(single_server, conference, current["id"], stopped.json()["duration_seconds"], member)


def test_first_request_is_answered_at_once_with_202_then_the_mp4(recorded: Recorded, tmp_path: Path) -> None:
    with recorded.client() as c:
        began = time.monotonic()
        first = c.get(recorded.url())
        answered = time.monotonic() - began
        assert first.status_code == 202, first.text
        assert answered < 2.0, answered  # the remux runs in the background
        assert first.json()["status"] == "preparing" and 0.0 <= first.json()["progress"] <= 1.0
        assert first.headers["location"] == recorded.url()
        assert int(first.headers["retry-after"]) > 0

        done = fetch_mp4(c, first.headers["location"])
        assert "attachment" in done.headers["content-disposition"]
        assert c.get(recorded.url(), headers={"Range": "bytes=0-7"}).status_code == 206
    path = tmp_path / "download.mp4"
    path.write_bytes(done.content)
    assert done.content[4:8] == b"ftyp" and b"moov" in done.content[:300]  # faststart
    info = ffprobe(path, "stream=codec_name:format=duration")
    assert sorted(s["codec_name"] for s in info["streams"]) == ["aac", "h264"]
    assert float(info["format"]["duration"]) == pytest.approx(recorded.duration, abs=0.3)


@pytest.mark.browser
def test_replay_page_waits_for_the_mp4_then_downloads_it(recorded: Recorded, open_page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (recorded.directory() / "download.mp4").unlink()
    page = open_page(f"{recorded.server.url}/replay.html#recording={recorded.recording}&token={recorded.member}")
    page.wait_until("!document.getElementById('download').hidden", what="the download link")
    with page.expect_download(timeout=60_000) as caught:
        page.click("#download")
    download = caught.value
    assert download.suggested_filename.endswith(".mp4")
    saved = tmp_path / "page.mp4"
    download.save_as(saved)
    assert saved.read_bytes()[4:8] == b"ftyp"
    assert "The MP4 is ready" in page.evaluate("document.getElementById('status').textContent")


def test_refusals_are_clear(recorded: Recorded) -> None:
    with httpx.Client(base_url=recorded.server.url, timeout=30) as c:
        assert c.get(recorded.url()).status_code == 401
        assert c.get("/recordings/nosuchrecording/download.mp4", params={"token": recorded.member}).status_code == 404


def test_a_remux_told_to_stop_leaves_no_file(recorded: Recorded, tmp_path: Path) -> None:
    """What a stopping server does to a remux under way (mp4_builds.RemuxStopped from its progress)."""
    calls = []

    def stop_now(fraction: float) -> None:
        calls.append(fraction)
        raise RemuxStopped

    with pytest.raises(RemuxStopped):
        remux_to_mp4(recorded.directory() / "index.m3u8", tmp_path / "download.mp4", stop_now)
    assert len(calls) == 1 and not list(tmp_path.iterdir())  # neither the MP4 nor its temporary file


def test_a_failed_remux_is_reported_once_then_tried_again(recorded: Recorded) -> None:
    directory = recorded.directory()
    (directory / "download.mp4").unlink(missing_ok=True)
    (directory / "index.m3u8").write_text("not a playlist\n")
    with recorded.client() as c:
        assert c.get(recorded.url()).status_code == 202
        failed = wait_until(lambda: c.get(recorded.url()), 30, "the remux to fail",
                            check=lambda r: r.status_code != 202, interval=0.25)
        assert failed.status_code == 500 and "could not be made" in failed.json()["detail"], failed.text
        assert c.get(recorded.url()).status_code == 202  # a new attempt, not a stuck failure
