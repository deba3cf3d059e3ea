"""Start-up after a crash with damaged recordings: each is recovered on its own.

Four conferences record at once and the server is killed with SIGKILL. Then, on disk: one recording
loses its init segment (garbage) while a segment is still unlisted, one its playlist (not even
UTF-8), one keeps everything, and one loses its database row (as when the server dies before writing
it); a folder of an unknown conference lies next to them. The server must start, recover the intact
and the row-less ones in full, rebuild the one without a playlist from its segments, keep the one
without an init segment as interrupted with its files, and leave the stray folder alone.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import httpx

import pytest

from media.recording.files import PLAYLIST, SEGMENT
from media.recording.playlist import parse, render
from tests.support.background import BackgroundPublisher
from bench.clip import test_clip
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out

CASES = ("no_init", "no_playlist", "intact", "no_row")


def _segments_on_disk(directory: Path) -> int:
    return sum(1 for p in directory.iterdir() if SEGMENT.match(p.name))


def _decodes(url: str) -> None:
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", url, "-f", "null", "-"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr[-2000:]


def test_damaged_recordings_are_recovered_one_by_one(fresh_server: ServerProcess) -> None:
    server = fresh_server
    clip = test_clip(seconds=4.0, width=640, height=360, kbps=500)
    conferences = {case: server.create_conference(case) for case in CASES}
    publishers = [
        BackgroundPublisher(server.url, cid, server.token(cid, "speaker"), clip).start()
        for cid in conferences.values()
    ]
    try:
        with server.admin() as c:
            ids = {
                case: wait_until(
                    lambda cid=cid: (r := c.get(f"/api/v1/conferences/{cid}/recording")).status_code == 200
                    and r.json()["id"],
                    20,
                    f"the recording of {case}",
                )
                for case, cid in conferences.items()
            }
        root = server.data_dir / "recordings"
        folders = {case: root / conferences[case] / ids[case] for case in CASES}
        wait_until(lambda: all(f.exists() and _segments_on_disk(f) >= 3 for f in folders.values()), 30, "3 segments each")
    finally:
        server.kill9()
        for publisher in publishers:
            publisher.stop()

    # The damage.
    segments, _ = parse((folders["no_init"] / PLAYLIST).read_text())
    (folders["no_init"] / PLAYLIST).write_text(render(segments[:-1], nominal_duration=2.0, ended=False))
    (folders["no_init"] / "init000.mp4").write_bytes(b"\0\0\0\x10moov" + b"\xff" * 40)
    (folders["no_playlist"] / PLAYLIST).write_bytes(b"#EXTM3U\n#EXT-X-MAP:URI\n\xff\xfe\x00")
    with sqlite3.connect(server.data_dir / "diemcau.db") as db:
        assert db.execute("DELETE FROM recordings WHERE id = ?", (ids["no_row"],)).rowcount == 1
    stray = root / "unknownconference" / "0123456789abcdef"
    shutil.copytree(folders["intact"], stray)
    on_disk = {case: _segments_on_disk(folder) for case, folder in folders.items()}

    server.start()  # raises if the server does not come up
    with server.admin() as c:
        listed = {r["conference_id"]: r for r in c.get("/api/v1/recordings").json()}
        rows = {case: listed[cid] for case, cid in conferences.items()}
        details = {case: c.get(f"/api/v1/recordings/{rows[case]['id']}").json() for case in CASES}
    assert {r["status"] for r in rows.values()} == {"interrupted"}
    assert rows["no_row"]["id"] == ids["no_row"]  # adopted under its own id
    for case in ("intact", "no_playlist", "no_row"):
        assert rows[case]["segment_count"] == on_disk[case], (case, rows[case], on_disk)
        url = server.url + details[case]["playlist_url"]
        vod = httpx.get(url, timeout=10).text
        assert vod.rstrip().endswith("#EXT-X-ENDLIST") and vod.count("#EXTINF") == on_disk[case]
        _decodes(url)
    assert rows["no_row"]["duration_seconds"] > 4
    # The run whose init segment is garbage cannot be played: left out, its files kept.
    assert rows["no_init"]["segment_count"] == 0
    assert _segments_on_disk(folders["no_init"]) == on_disk["no_init"]
    assert stray.is_dir() and _segments_on_disk(stray) == on_disk["intact"]
    log = server.log_path.read_text(errors="replace")
    assert "init000.mp4 unreadable" in log and f"{PLAYLIST} unreadable" in log and str(stray) in log
