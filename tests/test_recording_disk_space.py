"""Disk space: below the free-space floor nothing is recorded (the attendance database needs room
too), and the dashboard and /metrics say so; old recordings go by default.

The floor is set relative to the real free space of the test's file system (above it: "full"; 0:
room), so the checks use the real ``statvfs`` and the real server.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from media.recording.disk_space import DiskGuard
from media.recording.files import PLAYLIST
from media.recording.playlist import parse
from media.recording.recorder import Recorder
from server.settings import Settings
from tests.support.background import BackgroundPublisher
from bench.clip import test_clip
from tests.support.server import ServerFactory, ServerProcess
from tests.support.waiting import wait_until
from tests.test_recording_units import feed

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out

BEYOND = 10**16  # more than any disk's free space


def _drain(recorder: Recorder) -> None:
    wait_until(lambda: not recorder.backlog, 30, "the recorder's inbox drained", interval=0.01)
    time.sleep(0.2)  # the item being written


def test_a_running_recording_pauses_without_room_and_resumes_at_a_keyframe(tmp_path: Path) -> None:
    guard = DiskGuard(tmp_path, 0)
    recorder = Recorder("r", "c", tmp_path / "rec", segment_seconds=2.0, room=guard.room)
    speaker = feed(recorder, 3.0)
    _drain(recorder)
    guard.min_free_bytes = shutil.disk_usage(tmp_path).free + BEYOND
    feed(recorder, 3.0, publisher=speaker, start=3.0)
    _drain(recorder)
    assert recorder.paused_for_disk and recorder.stats.dropped_disk > 100
    written = recorder.duration
    assert written == pytest.approx(3.0, abs=0.2)  # the run was closed where the room ran out
    guard.min_free_bytes = 0
    feed(recorder, 3.0, publisher=speaker, start=6.0)
    recorder.stop()
    assert not recorder.paused_for_disk and recorder.stats.runs == 2
    segments, _ = parse((tmp_path / "rec" / PLAYLIST).read_text())
    assert sum(s.discontinuity for s in segments) == 1
    # resumed at the clip's first keyframe after 6 s (keyframes every second): 6 s, so 3 s more
    assert recorder.duration == pytest.approx(written + 3.0, abs=0.2)


def test_below_the_floor_nothing_is_recorded_and_the_dashboard_says_so(tmp_path: Path, start_server: ServerFactory) -> None:
    floor = shutil.disk_usage(tmp_path).free + BEYOND  # the servers' data dirs are on the same disk
    server = start_server(recording_min_free_bytes=floor)
    try:
        conference = server.create_conference("Full disk")
        publisher = BackgroundPublisher(server.url, conference, server.token(conference, "speaker")).start()
        try:
            time.sleep(3.0)  # a recording would have its first segment by now
            with server.admin() as c:
                assert c.get(f"/api/v1/conferences/{conference}/recording").status_code == 404
                status = c.get(f"/api/v1/conferences/{conference}/attendance/status").json()
                metrics = c.get("/metrics").text
        finally:
            publisher.stop()
        assert publisher.video_seconds > 2  # the publish itself went on
        disk = status["disk"]
        assert disk["low"] and disk["min_free_bytes"] == floor and disk["refused_recordings"] >= 1
        assert 0 < disk["free_bytes"] < floor
        assert "diemcau_disk_low 1.0" in metrics and f"diemcau_disk_min_free_bytes {float(floor)}" in metrics
        assert not (server.data_dir / "recordings" / conference).exists()
    finally:
        server.stop()


def test_old_recordings_are_deleted_by_default(fresh_server: ServerProcess) -> None:
    server = fresh_server
    days = Settings().retention_days
    assert days is not None  # recordings do not pile up until the disk is full
    conference = server.create_conference("Old")
    publisher = BackgroundPublisher(
        server.url, conference, server.token(conference, "speaker"), test_clip(seconds=4.0, width=640, height=360, kbps=500)
    ).start()
    try:
        time.sleep(3.0)
    finally:
        publisher.stop()
    with server.admin() as c:
        old = c.post(f"/api/v1/conferences/{conference}/recording/stop").json()["id"]
    publisher = BackgroundPublisher(
        server.url, conference, server.token(conference, "speaker"), test_clip(seconds=4.0, width=640, height=360, kbps=500)
    ).start()
    try:
        time.sleep(3.0)
    finally:
        publisher.stop()
    with server.admin() as c:
        recent = c.post(f"/api/v1/conferences/{conference}/recording/stop").json()["id"]
    server.stop()
    started = dt.datetime.now(dt.UTC) - dt.timedelta(days=days + 1)
    with sqlite3.connect(server.data_dir / "diemcau.db") as db:
        db.execute("UPDATE recordings SET started_at = ? WHERE id = ?", (started.strftime("%Y-%m-%d %H:%M:%S.%f"), old))
    server.start()
    with server.admin() as c:
        kept = [r["id"] for r in c.get("/api/v1/recordings", params={"conference_id": conference}).json()]
    assert kept == [recent]
    assert not (server.data_dir / "recordings" / conference / old).exists()
