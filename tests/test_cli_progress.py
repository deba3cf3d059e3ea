"""The CLI's uploads show a progress bar on a terminal (stderr) and nothing extra when piped: run as
real processes against the real server, with rich told the output is a terminal (TTY_COMPATIBLE)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from bench.server_process import ROOT, ServerProcess


def diemcau(server: ServerProcess, token: str, *args: str, terminal: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIEMCAU_") and k != "TTY_COMPATIBLE"}
    env.update({"DIEMCAU_URL": server.url, "DIEMCAU_TOKEN": token, "PYTHONIOENCODING": "utf-8", "COLUMNS": "160"})
    if terminal:
        env["TTY_COMPATIBLE"] = "1"
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_uploads_show_progress_on_a_terminal_only(single_server: ServerProcess, tmp_path: Path) -> None:
    conference = single_server.create_conference("Tiến độ tải lên")
    organiser = single_server.token(conference, "organiser")
    document = tmp_path / "nghi-quyet.pdf"
    document.write_bytes(b"%PDF-1.4\n" + os.urandom(3 * 1024 * 1024))
    r = diemcau(single_server, organiser, "materials", "upload", conference, str(document), terminal=True)
    assert r.returncode == 0, r.stderr
    assert "3145737 bytes  nghi-quyet.pdf" in r.stdout
    assert "nghi-quyet.pdf: sent, the server is working on it" in r.stderr and "3.1/3.1 MB" in r.stderr, r.stderr

    points = tmp_path / "diem-cau.csv"
    points.write_text("name,level,parent,summoned\nHuyện Ba Vì,district,,0\nXã Tản Lĩnh,commune,Huyện Ba Vì,40\n",
                      encoding="utf-8")
    r = diemcau(single_server, organiser, "points", "import", conference, str(points), terminal=True)
    assert r.returncode == 0 and "imported 2 new point(s)" in r.stdout, r.stderr
    assert "diem-cau.csv: sent, the server is working on it" in r.stderr, r.stderr

    piped = diemcau(single_server, organiser, "materials", "upload", conference, str(document), terminal=False)
    assert piped.returncode == 0 and piped.stderr == "", piped.stderr
    with httpx.Client(base_url=single_server.url, headers={"Authorization": f"Bearer {organiser}"}) as c:
        sizes = [m["size"] for m in c.get(f"/api/v1/conferences/{conference}/materials").json()]
    assert sizes == [3145737, 3145737]  # every byte arrived, both times
