"""A recording past its 999th run (each reconnect or resolution change starts one) stays whole:
written, recovered after a crash with the right init segment, and served over HLS.

The recorder starts numbering at run 998 here (a thousand real reconnects would take minutes); the
files are then its own, init998.mp4 to init1001.mp4.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx

from media.recording.files import PLAYLIST
from media.recording.playlist import parse, render
from media.recording.recorder import Recorder
from media.recording.recovery import close_interrupted
from tests.support.background import BackgroundPublisher
from bench.clip import test_clip
from bench.rtp_clip import RtpPublisher
from tests.support.server import ServerProcess

RUNS = 4


def _record_runs(directory: Path) -> Recorder:
    clip = test_clip(seconds=2.0, width=640, height=360, kbps=500)
    recorder = Recorder("r", "c", directory, segment_seconds=2.0)
    recorder._run_number = 997  # the next run is the 998th
    for n in range(RUNS):
        publisher = RtpPublisher(f"publisher-{n}", kinds=("video",)).join(recorder, {})
        publisher.send(recorder.reader, publisher.video([(i / 30, i * 3000, clip.video[i][2]) for i in range(15)]))
        recorder.publisher_closed(publisher.producer_id)
    recorder.stop()
    return recorder


def test_runs_past_999_are_recovered_with_their_init(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    recorder = _record_runs(rec)
    segments, _ = parse((rec / PLAYLIST).read_text())
    assert [s.map_uri for s in segments] == [f"init{998 + n}.mp4" for n in range(RUNS)]
    assert recorder.stats.runs == RUNS
    # Killed after the last run's segment was renamed into place, before the playlist named it.
    (rec / PLAYLIST).write_text(render(segments[:-1], nominal_duration=2.0, ended=False))
    found = close_interrupted(rec, 2.0)
    recovered, ended = parse((rec / PLAYLIST).read_text())
    assert ended and [s.map_uri for s in recovered] == [s.map_uri for s in segments]
    assert recovered[-1].discontinuity
    assert found.segments == RUNS and not found.problems


def test_runs_past_999_are_served(server: ServerProcess, tmp_path: Path) -> None:
    conference = server.create_conference("Many runs")
    publisher = BackgroundPublisher(server.url, conference, server.token(conference, "speaker")).start()
    try:
        deadline = time.monotonic() + 20
        with server.admin() as c:
            while time.monotonic() < deadline:
                r = c.get(f"/api/v1/conferences/{conference}/recording")
                if r.status_code == 200 and r.json()["segment_count"] >= 1:
                    break
                time.sleep(0.25)
    finally:
        publisher.stop()
    with server.admin() as c:
        stopped = c.post(f"/api/v1/conferences/{conference}/recording/stop")
        assert stopped.status_code == 200, stopped.text
        detail = c.get(f"/api/v1/recordings/{stopped.json()['id']}").json()
    # The recording's folder now holds what a recorder writes after its 999th run.
    folder = server.data_dir / "recordings" / conference / detail["id"]
    shutil.rmtree(folder)
    _record_runs(folder)

    url = server.url + detail["playlist_url"]
    playlist = httpx.get(url, timeout=10)
    assert playlist.status_code == 200
    uris = [line.split('URI="', 1)[1].split('"', 1)[0] if line.startswith("#EXT-X-MAP") else line
            for line in playlist.text.splitlines() if line and (not line.startswith("#") or line.startswith("#EXT-X-MAP"))]
    assert any(u.startswith("init1000.mp4") for u in uris) and any(u.startswith("init1001.mp4") for u in uris)
    for uri in uris:
        r = httpx.get(str(httpx.URL(url).join(uri)), timeout=10)
        assert r.status_code == 200, (uri, r.status_code, r.text[:200])
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", url, "-f", "null", "-"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr[-2000:]
