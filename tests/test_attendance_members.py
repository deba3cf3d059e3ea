"""Members: import with personal links, live via WebSocket or HLS heartbeats, replay progress reported."""

from __future__ import annotations

import csv
import io

import httpx

from tests.support.attendance_clients import PresenceClient, close_many
from tests.support.waiting import wait_until_async
from tests.support.server import ServerProcess

POINTS = "name,level,parent,summoned\nHuyện Đông,district,,60\nXã Bắc,commune,Huyện Đông,20\nXã Nam,commune,Huyện Đông,20\n"
MEMBERS = (
    "name,unit,point\n"
    "Nguyễn Văn An,Chi bộ 1,\n"  # watches live at home over WebSocket + player
    "Trần Thị Bình,Chi bộ 2,\n"  # watches live over HLS (heartbeats)
    "Lê Văn Cường,Chi bộ 3,\n"  # missed it, watched the recording
    "Phạm Thị Dung,Chi bộ 4,Xã Bắc\n"  # followed at her point
    "Hoàng Văn Em,Chi bộ 5,Xã Nam\n"  # point never connected; watched the recording
    "Vũ Thị Giang,Chi bộ 6,\n"  # absent
)


async def test_members_live_replay_and_absent(server: ServerProcess) -> None:
    cid = server.create_conference()
    organiser = server.token(cid, "organiser")
    api = httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {organiser}"}, timeout=20)
    clients: list[PresenceClient] = []
    try:
        r = await api.post(f"/api/v1/conferences/{cid}/points/import", content=POINTS.encode(),
                           headers={"content-type": "text/csv"})
        assert r.status_code == 200, r.text
        r = await api.post(f"/api/v1/conferences/{cid}/members/import", files={"file": ("m.csv", MEMBERS.encode(), "text/csv")})
        assert r.status_code == 200 and r.json() == {"created": 6}, r.text
        bad = "name,unit,point\n,Chi bộ,\nX,Y,Xã Không Có\n"
        r = await api.post(f"/api/v1/conferences/{cid}/members/import", content=bad.encode(),
                           headers={"content-type": "text/csv"})
        assert r.status_code == 400
        assert [(e["row"], e["message"]) for e in r.json()["detail"]["errors"]] == [
            (2, "name is empty"), (3, "connection point 'Xã Không Có' does not exist")
        ]

        r = await api.post(f"/api/v1/conferences/{cid}/members/tokens", params={"format": "csv"})
        assert r.status_code == 200
        rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
        assert [row["name"] for row in rows][:2] == ["Nguyễn Văn An", "Trần Thị Bình"]
        assert rows[3]["point"] == "Xã Bắc" and all("/viewer.html#conference=" in row["link"] for row in rows)
        token = {row["name"]: row["token"] for row in rows}
        points = {p["name"]: p for p in (await api.get(f"/api/v1/conferences/{cid}/points")).json()}
        point_link = (await api.post(f"/api/v1/conferences/{cid}/points/{points['Xã Bắc']['id']}/token")).json()

        def auth(name: str) -> dict:
            return {"Authorization": f"Bearer {token[name]}"}

        clients.append(await PresenceClient.open(server.url, cid, token["Nguyễn Văn An"]))
        clients.append(await PresenceClient.open(server.url, cid, point_link["token"]))
        for _ in range(2):  # the second heartbeat extends the same HLS session
            r = await api.post(f"/api/v1/conferences/{cid}/heartbeat", headers=auth("Trần Thị Bình"))
            assert r.status_code == 200, r.text
        for name, view, seconds in (("Lê Văn Cường", "a", 600), ("Lê Văn Cường", "a", 1200),
                                    ("Lê Văn Cường", "b", 900), ("Hoàng Văn Em", "x", 300)):
            r = await api.post(f"/api/v1/conferences/{cid}/replay-progress", headers=auth(name),
                               json={"seconds_watched": seconds, "view_id": view, "duration_seconds": 4200})
            assert r.status_code == 200, r.text
        r = await api.post(f"/api/v1/conferences/{cid}/replay-progress", headers=auth("Lê Văn Cường"),
                           json={"seconds_watched": -5})
        assert r.status_code == 422

        await wait_until_async(
            lambda: api.get(f"/api/v1/conferences/{cid}/attendance/status"),
            60, "members online",
            check=lambda r: r.json()["totals"]["members_online"] == 2 and r.json()["totals"]["connected"] == 1,
        )
        report = (await api.get(f"/api/v1/conferences/{cid}/attendance/report")).json()
        m = report["members"]
        # What a replay page reports is kept as information only: nobody was served a recording here
        # (there is none), so nobody made up by replay (tests/test_hls_links.py counts served segments).
        assert (m["total"], m["attended_live"], m["via_point"], m["made_up_by_replay"], m["absent"]) == (6, 2, 1, 0, 3)
        assert m["replay"] == []
        absent = {x["name"]: x for x in m["absent_members"]}
        assert list(absent) == ["Lê Văn Cường", "Hoàng Văn Em", "Vũ Thị Giang"]
        assert absent["Hoàng Văn Em"]["point"] == "Xã Nam" and absent["Lê Văn Cường"]["replay_percent"] is None
        r = await api.get(f"/api/v1/conferences/{cid}/attendance/report.csv", params={"table": "replay"})
        assert r.content.decode("utf-8-sig").splitlines() == ["name,unit,point,minutes_watched,percent_watched,views"]
        me = (await api.get(f"/api/v1/conferences/{cid}/attendance/me", headers=auth("Lê Văn Cường"))).json()
        assert (me["replay_seconds_watched"], me["replay_views"], me["replay_seconds_served"]) == (2100.0, 2, 0.0)

        # A member sees only their own record; the organiser views stay closed to them.
        me = (await api.get(f"/api/v1/conferences/{cid}/attendance/me", headers=auth("Trần Thị Bình"))).json()
        assert me["subject_type"] == "member" and [s["kind"] for s in me["sessions"]] == ["hls"]
        for path in ("attendance/report", "attendance/status", "attendance/sessions", "members", "points"):
            r = await api.get(f"/api/v1/conferences/{cid}/{path}", headers=auth("Trần Thị Bình"))
            assert r.status_code == 403, path
    finally:
        await close_many(clients)
        await api.aclose()
