"""The ``diemcau`` CLI, run as a real process against the real server."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.support.attendance_clients import hierarchy, hierarchy_csv
from bench.server_process import ROOT, ServerProcess, free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out


def diemcau(srv: ServerProcess, token: str | None, *args: str, url: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIEMCAU_")}
    env.update({"DIEMCAU_URL": url or srv.url, "PYTHONIOENCODING": "utf-8"})
    if token:
        env["DIEMCAU_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_cli_entry_point_is_declared() -> None:
    from server.cli import main

    assert callable(main)
    assert 'diemcau = "server.cli:main"' in (ROOT / "pyproject.toml").read_text()


def test_organiser_workflow(server: ServerProcess, tmp_path: Path) -> None:
    hanoi = dt.timezone(dt.timedelta(hours=7))
    start = (dt.datetime.now(hanoi) - dt.timedelta(hours=1)).replace(second=0, microsecond=0)
    r = diemcau(server, server.admin_token, "conference", "create", "Hội nghị học tập Nghị quyết",
                "--start", start.isoformat(), "--end", (start + dt.timedelta(hours=3)).isoformat(),
                "--organiser", "Ban Tổ chức")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    cid = lines[0].strip()
    organiser = lines[1].removeprefix("organiser token: ")
    assert lines[2] == f"organiser dashboard: {server.url}/dashboard.html#conference={cid}&token={organiser}"
    conf = httpx.get(f"{server.url}/api/v1/conferences/{cid}", headers={"Authorization": f"Bearer {organiser}"}).json()
    assert conf["title"] == "Hội nghị học tập Nghị quyết" and conf["scheduled_start"].startswith(start.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M"))

    points_csv = tmp_path / "diem-cau.csv"
    points_csv.write_text(hierarchy_csv(hierarchy()), encoding="utf-8")
    r = diemcau(server, organiser, "points", "import", cid, str(points_csv))
    assert r.returncode == 0 and "imported 236 new point(s)" in r.stdout, r.stderr

    bad = tmp_path / "bad.csv"
    bad.write_text("name,level,parent,summoned\nXã Mới,commune,Huyện Không Có,5\n", encoding="utf-8")
    r = diemcau(server, organiser, "points", "import", cid, str(bad))
    assert r.returncode == 1
    assert "error: 400" in r.stderr and "row 2: parent 'Huyện Không Có' is not in the file" in r.stderr

    links_file = tmp_path / "links.csv"
    r = diemcau(server, organiser, "points", "links", cid, "-o", str(links_file))
    assert r.returncode == 0, r.stderr
    links = list(csv.DictReader(io.StringIO(links_file.read_text(encoding="utf-8"))))
    assert len(links) == 236 and list(links[0]) == ["name", "level", "parent", "link", "token"]
    assert links[0]["link"].startswith(f"{server.url}/point.html#conference={cid}&token=")

    r = diemcau(server, organiser, "token", cid, "viewer", "--name", "Phòng họp phụ")
    assert r.returncode == 0 and r.stdout.splitlines()[1].startswith(f"{server.url}/viewer.html#conference={cid}")

    members = tmp_path / "members.csv"
    members.write_text("name,unit,point\nNguyễn Văn An,Chi bộ 1,\nTrần Thị Bình,Chi bộ 2,Xã 01-01\n", encoding="utf-8")
    assert "imported 2 member(s)" in diemcau(server, organiser, "members", "import", cid, str(members)).stdout
    r = diemcau(server, organiser, "members", "links", cid)
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [(x["name"], x["point"]) for x in rows] == [("Nguyễn Văn An", ""), ("Trần Thị Bình", "Xã 01-01")]

    doc = tmp_path / "Tài liệu.pdf"
    doc.write_bytes(b"%PDF-1.4\n%%EOF\n")
    r = diemcau(server, organiser, "materials", "upload", cid, str(doc), "--title", "Tài liệu học tập")
    assert r.returncode == 0 and r.stdout.rstrip().endswith("15 bytes  Tài liệu.pdf"), r.stderr
    assert "Tài liệu học tập" in diemcau(server, organiser, "materials", "list", cid).stdout

    # Two points connect and report; then the report, in every format.
    token = {x["name"]: x["token"] for x in links}
    ws_url = server.url.replace("http://", "ws://") + f"/ws/conferences/{cid}?token="
    with connect(ws_url + token["Tỉnh Minh Sơn"], proxy=None) as province, \
            connect(ws_url + token["Xã 01-01"], proxy=None) as commune:
        province.send(json.dumps({"type": "headcount", "present": 140}))
        commune.send(json.dumps({"type": "headcount", "present": 200}))
        status = wait_until(lambda: diemcau(server, organiser, "status", cid).stdout, 30, "both points' headcounts",
                            check=lambda status: status.startswith("connected 2/236 | headcounts 2"), interval=0.2)
        assert "offline: Huyện Số 01 (district)" in status

        r = diemcau(server, organiser, "report", cid)
        assert r.returncode == 0, r.stderr
        text = r.stdout
        summoned = sum(p.summoned for p in hierarchy())
        assert f"Present 340 of {summoned:,} summoned:" in text
        # The scheduled start was an hour ago: both joins count as late.
        assert "Points: 236 | connected 2 | now 2 | late 2 | left early 0 | never 234 | headcount reported 2" in text
        assert "Joined late (2):" in text and "  Tỉnh Minh Sơn (province) +" in text
        assert "Never connected (234):" in text and "Huyện Số 10 (district)" in text
        assert "Members: 2 | live 0 | at their point 1 | made up by replay 0 | absent 1" in text

        report = json.loads(diemcau(server, organiser, "report", cid, "-f", "json").stdout)
        assert report["totals"]["present"] == 340
        levels = list(csv.reader(io.StringIO(diemcau(server, organiser, "report", cid, "-f", "csv", "--table", "levels").stdout)))
        assert levels[0][0] == "level" and levels[-1][:3] == ["total", "236", "2"]
        html_file = tmp_path / "report.html"
        assert diemcau(server, organiser, "report", cid, "-f", "html", "-o", str(html_file)).returncode == 0
        assert "Hội nghị học tập Nghị quyết" in html_file.read_text(encoding="utf-8")

    r = diemcau(server, organiser, "conference", "set", cid, "--status", "ended")
    assert r.returncode == 0 and " ended " in r.stdout


def test_cli_errors_are_one_clear_line(server: ServerProcess) -> None:
    r = diemcau(server, "wrong-token", "report", "abc")
    assert r.returncode == 1 and r.stderr.strip() == "error: 401 invalid or revoked token"
    r = diemcau(server, server.admin_token, "report", "no-such-conference")
    assert r.returncode == 1 and "404 unknown conference 'no-such-conference'" in r.stderr
    r = diemcau(server, server.admin_token, "conference", "create", "x", "--start", "tomorrow")
    assert r.returncode == 1 and "'tomorrow' is not a date and time" in r.stderr
    r = diemcau(server, None, "conference", "list", url=f"http://127.0.0.1:{free_port()}")
    assert r.returncode == 1 and r.stderr.startswith("error: cannot reach the server at http://127.0.0.1:")
