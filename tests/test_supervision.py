"""Supervision: teams scoped to districts check in at points (403 outside them), and remote
supervision: the point page (Chromium, fake camera) sends room snapshots only when the conference
opts in and its operator consents, the dashboard's wall shows them, and after the retention period
they are gone, files and rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.support.server import ServerFactory, ServerProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out

RETENTION = 5.0  # seconds a snapshot is kept in this test (the default is 30 days)
JPEG = b"\xff\xd8\xff\xe0" + bytes(200) + b"\xff\xd9"


@dataclass
class Tree:
    server: ServerProcess
    conference: str
    points: dict[str, str]  # name -> id
    point_tokens: dict[str, str]  # name -> operator token
    organiser: str

    def api(self, path: str) -> str:
        return f"/api/v1/conferences/{self.conference}/{path}"

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


@pytest.fixture(scope="module")
def tree(start_server: ServerFactory) -> Iterator[Tree]:
    with start_server("supervision", workers=1, snapshot_interval_seconds=1,
                      snapshot_retention_seconds=RETENTION) as server:
        conference = server.create_conference("Học tập Nghị quyết — giám sát")
        rows = ["name,level,parent", "Tỉnh Giám Sát,province,", "Huyện Bắc,district,Tỉnh Giám Sát",
                "Huyện Nam,district,Tỉnh Giám Sát", "Xã Bắc 1,commune,Huyện Bắc", "Xã Nam 1,commune,Huyện Nam"]
        with server.admin() as c:
            base = f"/api/v1/conferences/{conference}"
            r = c.post(f"{base}/points/import", content="\n".join(rows).encode(), headers={"Content-Type": "text/csv"})
            assert r.status_code == 200, r.text
            links = c.post(f"{base}/points/tokens", json={}).json()
        yield Tree(server, conference, {link["name"]: link["point_id"] for link in links},
                   {link["name"]: link["token"] for link in links}, server.token(conference, "organiser", "Ban tổ chức"))


def test_a_team_checks_in_only_inside_its_districts(tree: Tree) -> None:
    with tree.client(tree.organiser) as c:
        r = c.post(tree.api("supervision/teams"), json={"name": "Tổ giám sát số 1", "point_ids": [tree.points["Huyện Bắc"]]})
        assert r.status_code == 201, r.text
        assert "supervision.html" in r.json()["links"]["page"]
        team = r.json()["token"]
        assert c.post(tree.api("supervision/teams"), json={"name": "x", "point_ids": ["nope"]}).status_code == 422
    with tree.client(team) as c:
        assert {p["name"] for p in c.get(tree.api("supervision/points")).json()} == {"Huyện Bắc", "Xã Bắc 1"}
        r = c.post(tree.api("supervision/visits"), json={"point_id": tree.points["Xã Bắc 1"], "rating": 4,
                                                         "note": "Phòng họp đủ người, âm thanh tốt"})
        assert r.status_code == 201, r.text
        assert r.json()["district"] == "Huyện Bắc" and r.json()["supervisor"] == "Tổ giám sát số 1"
        r = c.post(tree.api("supervision/visits"), json={"point_id": tree.points["Xã Nam 1"], "rating": 3})
        assert r.status_code == 403, r.text
        assert c.post(tree.api("supervision/visits"), json={"point_id": tree.points["Xã Bắc 1"], "rating": 9}).status_code == 422
        assert c.put(tree.api("supervision/snapshots/settings"), json={"enabled": True}).status_code == 403
    with tree.client(tree.organiser) as c:
        visits = c.get(tree.api("supervision/visits")).json()
        assert [(v["point"], v["rating"]) for v in visits] == [("Xã Bắc 1", 4)]
        report = c.get(tree.api("proposals/report.html")).text
        assert "Phòng họp đủ người, âm thanh tốt" in report
        points = {line["name"]: line for line in c.get(tree.api("essays/rollup")).json()["points"]}
        assert points["Xã Bắc 1"]["visits"]["count"] == 1 and points["Xã Bắc 1"]["visits"]["mean_rating"] == 4
        assert points["Xã Nam 1"]["visits"]["count"] == 0
        table = c.get(tree.api("essays/rollup.csv"), params={"table": "points"}).text.lstrip("\ufeff")
        rows = {row["name"]: row for row in csv.DictReader(io.StringIO(table))}
        assert rows["Xã Bắc 1"]["supervision_visits"] == "1" and rows["Xã Bắc 1"]["mean_rating"] == "4.0"


def snapshot_count(tree: Tree) -> int:
    with tree.client(tree.organiser) as c:
        wall = c.get(tree.api("supervision/snapshots")).json()
    return sum(1 for d in wall["districts"] for p in d["points"] if p["snapshot"])


def test_snapshots_are_refused_until_the_conference_opts_in(tree: Tree) -> None:
    with tree.client(tree.point_tokens["Xã Nam 1"]) as c:
        r = c.post(tree.api("supervision/snapshots"), content=JPEG, headers={"Content-Type": "image/jpeg"})
        assert r.status_code == 409, r.text
    with tree.client(tree.organiser) as c:
        assert c.put(tree.api("supervision/snapshots/settings"), json={"enabled": True}).json()["enabled"] is True
    with tree.client(tree.point_tokens["Xã Nam 1"]) as c:
        big = b"\xff\xd8\xff" + bytes(70_000) + b"\xff\xd9"
        assert c.post(tree.api("supervision/snapshots"), content=big, headers={"Content-Type": "image/jpeg"}).status_code == 413
        png = b"\x89PNG\r\n\x1a\n" + bytes(100)
        assert c.post(tree.api("supervision/snapshots"), content=png, headers={"Content-Type": "image/jpeg"}).status_code == 415
        assert c.post(tree.api("supervision/snapshots"), content=JPEG, headers={"Content-Type": "image/png"}).status_code == 415
    assert snapshot_count(tree) == 0
    with tree.client(tree.organiser) as c:
        assert c.put(tree.api("supervision/snapshots/settings"), json={"enabled": False}).status_code == 200


def test_point_page_sends_snapshots_only_when_opted_in_and_the_wall_shows_them(tree: Tree, open_page) -> None:  # type: ignore[no-untyped-def]
    point = "Xã Bắc 1"
    url = f"{tree.server.url}/point.html#conference={tree.conference}&token={tree.point_tokens[point]}"
    page = open_page(url)
    page.wait_until("document.getElementById('study-slot').dataset.ready", what="the study section")
    # not opted in: no consent box, nothing sent
    assert page.evaluate("document.getElementById('snapshot-consent')") is None
    assert snapshot_count(tree) == 0
    page.close()

    with tree.client(tree.organiser) as c:
        assert c.put(tree.api("supervision/snapshots/settings"), json={"enabled": True}).status_code == 200
    page = open_page(url)
    page.wait_until("document.getElementById('study-slot').dataset.ready", what="the study section")
    assert page.evaluate("document.getElementById('snapshot-consent').checked") is False
    assert snapshot_count(tree) == 0 and page.evaluate("window.diemcauSnapshots") is None  # not before consent
    page.click("#snapshot-consent")
    page.wait_until("window.diemcauSnapshots && window.diemcauSnapshots.sent >= 2", what="two snapshots sent")
    files = list((tree.server.data_dir / "snapshots" / tree.conference).iterdir())
    assert files and all(1000 < f.stat().st_size < 64 * 1024 for f in files)
    assert all(f.read_bytes().startswith(b"\xff\xd8\xff") for f in files)

    dashboard = open_page(f"{tree.server.url}/dashboard.html#conference={tree.conference}&token={tree.organiser}")
    shown = dashboard.wait_until(
        f"""(() => {{ const img = document.querySelector('#snapshot-wall figure[data-point="{tree.points[point]}"] img');
                      return img && img.complete && img.naturalWidth; }})()""",
        what="the point's snapshot on the wall")
    assert shown == 320
    assert dashboard.evaluate("document.getElementById('snapshots-enabled').checked") is True
    districts = dashboard.evaluate("[...document.querySelectorAll('#snapshot-wall .district h3')].map(h => h.textContent)")
    assert "Huyện Bắc" in districts and "Huyện Nam" in districts

    page.click("#snapshot-consent")  # the operator withdraws consent: sending stops
    sent = page.evaluate("window.diemcauSnapshots.sent")
    wait_until(lambda: snapshot_count(tree) == 0, RETENTION * 3, "the snapshots deleted after the retention period")
    assert not list((tree.server.data_dir / "snapshots" / tree.conference).iterdir())
    assert page.evaluate("window.diemcauSnapshots.sent") == sent


def test_supervisor_checks_in_from_the_supervision_page(tree: Tree, open_page) -> None:  # type: ignore[no-untyped-def]
    with tree.client(tree.organiser) as c:
        team = c.post(tree.api("supervision/teams"), json={"name": "Tổ giám sát số 2",
                                                           "point_ids": [tree.points["Huyện Nam"]]}).json()
    page = open_page(team["links"]["page"])
    page.wait_until("document.querySelectorAll('#visit-point option').length === 2", what="the team's points")
    page.select_option("#visit-point", tree.points["Xã Nam 1"])
    page.select_option("#visit-rating", "2")
    page.fill("#visit-note", "Phòng tối, thiếu ghế")
    page.click("#visit-form button[type=submit]")
    page.wait_until("document.querySelectorAll('#visit-list li').length === 1", what="the visit listed")
    assert "Xã Nam 1" in page.evaluate("document.querySelector('#visit-list li').textContent")
    with tree.client(tree.organiser) as c:
        visits = [v for v in c.get(tree.api("supervision/visits")).json() if v["supervisor"] == "Tổ giám sát số 2"]
    assert [(v["point"], v["rating"], v["note"]) for v in visits] == [("Xã Nam 1", 2, "Phòng tối, thiếu ghế")]
