"""Connection points: CSV import and its errors, links and token rotation, schedule and agenda."""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from tests.support.attendance_clients import hierarchy, hierarchy_csv
from tests.support.http import http
from tests.support.server import ServerProcess


@pytest.fixture
def organiser(server: ServerProcess) -> tuple[str, httpx.Client]:
    cid = server.create_conference()
    token = server.token(cid, "organiser", "Ban Tổ chức")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=20) as c:
        yield cid, c


def post_csv(c: httpx.Client, cid: str, text: str, **params) -> httpx.Response:
    return c.post(f"/api/v1/conferences/{cid}/points/import", content=text.encode(),
                  headers={"content-type": "text/csv"}, params=params)


def test_import_hierarchy_with_semicolons_and_vietnamese_levels(organiser: tuple[str, httpx.Client]) -> None:
    cid, c = organiser
    points = hierarchy()
    text = hierarchy_csv(points, delimiter=";").replace(";province;", ";Tỉnh;").replace(";commune;", ";xã;")
    r = c.post(f"/api/v1/conferences/{cid}/points/import",
               files={"file": ("diem-cau.csv", ("\ufeff" + text).encode(), "text/csv")})
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["updated"]) == (236, 0)
    listed = c.get(f"/api/v1/conferences/{cid}/points").json()
    assert [p["level"] for p in listed[:11]] == ["province"] + ["district"] * 10
    by_name = {p["name"]: p for p in listed}
    assert by_name["Xã 07-03"]["parent_id"] == by_name["Huyện Số 07"]["id"]
    assert by_name["Huyện Số 07"]["parent_id"] == by_name["Tỉnh Minh Sơn"]["id"]
    assert sum(p["summoned"] for p in listed) == sum(p.summoned for p in points)

    # Re-importing the same names is refused unless asked to update.
    r = post_csv(c, cid, "name,level,parent,summoned\nXã 01-01,commune,Huyện Số 01,999\n")
    assert r.status_code == 400 and "already exists" in r.json()["detail"]["errors"][0]["message"]
    r = post_csv(c, cid, "name,level,parent,summoned,operator\nXã 01-01,commune,Huyện Số 02,999,Chị Hoa\n",
                 update_existing="true")
    assert r.status_code == 200 and r.json()["updated"] == 1
    point = c.get(f"/api/v1/conferences/{cid}/points/{by_name['Xã 01-01']['id']}").json()
    assert (point["summoned"], point["operator_name"], point["parent_id"]) == (999, "Chị Hoa", by_name["Huyện Số 02"]["id"])


def test_bad_rows_are_all_reported_and_nothing_is_imported(organiser: tuple[str, httpx.Client]) -> None:
    cid, c = organiser
    text = (
        "name,level,parent,summoned\n"
        "Tỉnh A,province,,100\n"  # row 2 ok
        "Huyện B,district,Tỉnh A,12.500\n"  # row 3 ok: thousands separator
        ",commune,Huyện B,10\n"  # row 4 no name
        "Xã C,village,Huyện B,10\n"  # row 5 bad level
        "Xã D,commune,Huyện Z,10\n"  # row 6 unknown parent
        "Xã E,commune,Huyện B,mười\n"  # row 7 not a number
        "Huyện B,district,Tỉnh A,5\n"  # row 8 duplicate
        "Huyện F,district,Xã G,5\n"  # row 9 parent of a lower level
        "Xã G,commune,Huyện B,-3\n"  # row 10 negative
    )
    r = post_csv(c, cid, text)
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert "nothing was imported" in detail["message"]
    assert [e["row"] for e in detail["errors"]] == [4, 5, 6, 7, 8, 9, 10]
    messages = " | ".join(e["message"] for e in detail["errors"])
    for needle in ("name is empty", "'village' is not one of province, district, commune",
                   "parent 'Huyện Z' is not in the file", "'mười' is not a whole number",
                   "duplicate name 'Huyện B' (also on row 3)", "a district cannot belong to the commune 'Xã G'"):
        assert needle in messages
    assert c.get(f"/api/v1/conferences/{cid}/points").json() == []

    r = post_csv(c, cid, "ten,cap\nA,province\n")
    assert r.status_code == 400 and "missing column(s) name, level" in r.json()["detail"]["message"]
    r = c.post(f"/api/v1/conferences/{cid}/points/import", content="name,level\nHà Tây,province\n".encode("latin-1"),
               headers={"content-type": "text/csv"})
    assert r.status_code == 400 and "not UTF-8" in r.json()["detail"]["message"]
    r = post_csv(c, cid, "")
    assert r.status_code == 400 and "empty file" in r.json()["detail"]["message"]


def test_point_links_rotate_and_are_scoped(server: ServerProcess, organiser: tuple[str, httpx.Client]) -> None:
    cid, c = organiser
    assert post_csv(c, cid, "name,level,parent,summoned\nTỉnh,province,,10\nHuyện,district,Tỉnh,5\n").status_code == 200
    r = c.post(f"/api/v1/conferences/{cid}/points/tokens", params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [(x["name"], x["level"], x["parent"]) for x in rows] == [("Tỉnh", "province", ""), ("Huyện", "district", "Tỉnh")]
    assert rows[1]["link"] == f"{server.url}/point.html#conference={cid}&token={rows[1]['token']}"
    old = rows[1]["token"]
    ids = {p["name"]: p["id"] for p in c.get(f"/api/v1/conferences/{cid}/points").json()}

    def as_token(token: str, method: str, path: str, **kw) -> httpx.Response:
        return http.request(method, f"{server.url}/api/v1/conferences/{cid}{path}",
                            headers={"Authorization": f"Bearer {token}"}, timeout=10, **kw)

    assert as_token(old, "GET", f"/points/{ids['Huyện']}").json()["name"] == "Huyện"
    assert as_token(old, "GET", f"/points/{ids['Tỉnh']}").status_code == 403
    assert as_token(old, "GET", "/points").status_code == 403
    assert as_token(old, "POST", f"/points/{ids['Huyện']}/headcount", json={"present": 4}).status_code == 201
    assert as_token(old, "POST", f"/points/{ids['Huyện']}/headcount", json={"present": -1}).status_code == 422

    new = c.post(f"/api/v1/conferences/{cid}/points/{ids['Huyện']}/token").json()
    assert new["point_id"] == ids["Huyện"] and new["token"] != old
    assert as_token(old, "GET", f"/points/{ids['Huyện']}").status_code == 401  # the leaked link is dead
    assert as_token(new["token"], "GET", f"/points/{ids['Huyện']}").status_code == 200

    viewer = server.token(cid, "viewer")
    assert as_token(viewer, "POST", "/points", json={"name": "X", "level": "commune"}).status_code == 403
    other = server.create_conference()
    assert httpx.get(f"{server.url}/api/v1/conferences/{other}/points",
                     headers=c.headers, timeout=10).status_code == 403


def test_single_point_crud(organiser: tuple[str, httpx.Client]) -> None:
    cid, c = organiser
    base = f"/api/v1/conferences/{cid}/points"
    prov = c.post(base, json={"name": "Tỉnh", "level": "province", "summoned": 80, "operator_name": "Anh Tuấn"}).json()
    dist = c.post(base, json={"name": "Huyện", "level": "district", "parent_id": prov["id"]}).json()
    assert dist["parent_id"] == prov["id"]
    r = c.post(base, json={"name": "Tỉnh 2", "level": "province", "parent_id": dist["id"]})
    assert r.status_code == 422 and "a province cannot belong to a district" in r.json()["detail"]
    assert c.post(base, json={"name": "Huyện", "level": "district"}).status_code == 422
    assert c.post(base, json={"name": "Q", "level": "hamlet"}).status_code == 422
    r = c.patch(f"{base}/{dist['id']}", json={"summoned": 33, "operator_name": "Chị Lan"})
    assert (r.json()["summoned"], r.json()["operator_name"]) == (33, "Chị Lan")
    assert c.delete(f"{base}/{prov['id']}").status_code == 204
    assert c.get(f"{base}/{dist['id']}").json()["parent_id"] is None
    assert c.get(f"{base}/nope").status_code == 404
    assert c.get("/api/v1/conferences/nope/points").status_code == 404


def test_schedule_status_and_agenda(server: ServerProcess, organiser: tuple[str, httpx.Client]) -> None:
    cid, c = organiser
    r = c.patch(f"/api/v1/conferences/{cid}", json={
        "scheduled_start": "2026-05-19T08:00:00+07:00", "scheduled_end": "2026-05-19T11:30:00+07:00",
        "status": "live", "description": "Quán triệt Nghị quyết Trung ương",
    })
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["scheduled_start"].startswith("2026-05-19T01:00:00") and body["status"] == "live"
    assert c.patch(f"/api/v1/conferences/{cid}", json={"status": "paused"}).status_code == 422
    r = c.patch(f"/api/v1/conferences/{cid}", json={"scheduled_end": "2026-05-19T07:00:00+07:00"})
    assert r.status_code == 422 and "after scheduled_start" in r.json()["detail"]
    local = server.create_conference("Giờ địa phương", scheduled_start="2026-05-20T14:00:00+07:00")
    with server.admin() as admin:
        start = admin.get(f"/api/v1/conferences/{local}").json()["scheduled_start"]
    assert start.startswith("2026-05-20T07:00:00"), start  # stored in UTC, not as local wall time
    viewer = server.token(cid, "viewer")
    assert httpx.patch(f"{server.url}/api/v1/conferences/{cid}", json={"status": "ended"},
                       headers={"Authorization": f"Bearer {viewer}"}).status_code == 403

    agenda = [
        {"title": "Khai mạc", "speaker": "Bí thư Tỉnh ủy", "starts_at": "2026-05-19T08:00:00+07:00", "duration_minutes": 15},
        {"title": "Quán triệt Nghị quyết", "speaker": "Báo cáo viên", "duration_minutes": 120},
    ]
    r = c.put(f"/api/v1/conferences/{cid}/agenda", json=agenda)
    assert r.status_code == 200 and [i["position"] for i in r.json()] == [0, 1]
    r = c.post(f"/api/v1/conferences/{cid}/agenda", json={"title": "Bế mạc"})
    assert r.status_code == 201 and r.json()["position"] == 2
    listed = httpx.get(f"{server.url}/api/v1/conferences/{cid}/agenda", headers={"Authorization": f"Bearer {viewer}"}).json()
    assert [i["title"] for i in listed] == ["Khai mạc", "Quán triệt Nghị quyết", "Bế mạc"]
    assert listed[0]["starts_at"].startswith("2026-05-19T01:00:00")
    assert c.delete(f"/api/v1/conferences/{cid}/agenda/{listed[1]['id']}").status_code == 204
    assert len(c.get(f"/api/v1/conferences/{cid}/agenda").json()) == 2
