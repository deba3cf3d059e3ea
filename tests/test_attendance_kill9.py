"""kill -9 of the server loses no attendance already recorded; open sessions are closed on restart."""

from __future__ import annotations

import httpx
import pytest

from tests.support.attendance_clients import PresenceClient, close_many
from tests.support.waiting import wait_until_async
from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out

CSV = "name,level,parent,summoned\nTỉnh,province,,100\nHuyện A,district,Tỉnh,40\nHuyện B,district,Tỉnh,30\nHuyện C,district,Tỉnh,20\n"


async def test_kill9_keeps_attendance(fresh_server: ServerProcess) -> None:
    srv = fresh_server
    cid = srv.create_conference()
    admin = httpx.AsyncClient(base_url=srv.url, headers={"Authorization": f"Bearer {srv.admin_token}"}, timeout=20)
    clients: list[PresenceClient] = []
    try:
        r = await admin.post(f"/api/v1/conferences/{cid}/points/import", content=CSV.encode(),
                             headers={"content-type": "text/csv"})
        assert r.status_code == 200, r.text
        links = (await admin.post(f"/api/v1/conferences/{cid}/points/tokens")).json()
        tokens = {x["name"]: x["token"] for x in links}
        ids = {x["name"]: x["point_id"] for x in links}
        member = (await admin.post(f"/api/v1/conferences/{cid}/members", json={"name": "Nguyễn Văn An"})).json()
        member_token = (await admin.post(f"/api/v1/conferences/{cid}/members/{member['id']}/token")).json()["token"]
        viewer_token = srv.token(cid, "viewer", "Xem tại nhà")

        province, district_a, district_b = [
            await PresenceClient.open(srv.url, cid, tokens[n]) for n in ("Tỉnh", "Huyện A", "Huyện B")
        ]
        watcher = await PresenceClient.open(srv.url, cid, member_token)
        clients = [province, district_a, district_b, watcher]
        await district_a.send({"type": "headcount", "present": 38})
        r = await admin.post(f"/api/v1/conferences/{cid}/points/{ids['Tỉnh']}/headcount", json={"present": 97})
        assert r.status_code == 201
        as_member = {"Authorization": f"Bearer {member_token}"}
        r = await admin.post(f"/api/v1/conferences/{cid}/replay-progress", headers=as_member,
                             json={"seconds_watched": 125.5, "view_id": "v1", "duration_seconds": 3600})
        assert r.status_code == 200, r.text
        r = await admin.post(f"/api/v1/conferences/{cid}/heartbeat", json={"kind": "hls"},
                             headers={"Authorization": f"Bearer {viewer_token}"})
        assert r.status_code == 200, r.text
        r = await wait_until_async(
            lambda: admin.get(f"/api/v1/conferences/{cid}/attendance/sessions"),
            60, "sessions recorded",
            check=lambda r: len(r.json()) == 5,
        )
        await district_b.close()
        await wait_until_async(
            lambda: admin.get(f"/api/v1/conferences/{cid}/attendance/sessions"),
            60, "district B left",
            check=lambda r: sum(s["left_at"] is not None for s in r.json()) == 1,
        )
        await wait_until_async(
            lambda: admin.get(f"/api/v1/conferences/{cid}/attendance/status"),
            60, "headcounts",
            check=lambda r: r.json()["totals"]["reported"] == 2,
        )
        before = {s["id"]: s for s in (await admin.get(f"/api/v1/conferences/{cid}/attendance/sessions")).json()}

        srv.kill9()
        await close_many(clients)
        clients = []
        srv.start()

        after = {s["id"]: s for s in (await admin.get(f"/api/v1/conferences/{cid}/attendance/sessions")).json()}
        assert set(after) == set(before)
        for sid, old in before.items():
            new = after[sid]
            assert (new["joined_at"], new["subject_id"], new["kind"]) == (old["joined_at"], old["subject_id"], old["kind"])
            if old["left_at"] is not None:
                assert (new["left_at"], new["end_reason"]) == (old["left_at"], "left")
            elif old["kind"] == "hls":
                assert new["left_at"] is None  # ends by heartbeat timeout, not by the restart
            else:
                assert new["end_reason"] == "server_restart" and new["left_at"] >= new["joined_at"]

        status = (await admin.get(f"/api/v1/conferences/{cid}/attendance/status")).json()
        assert status["totals"]["connected"] == 0
        assert {p["name"]: p["headcount"] for p in status["points"]} == {
            "Tỉnh": 97, "Huyện A": 38, "Huyện B": None, "Huyện C": None
        }
        report = (await admin.get(f"/api/v1/conferences/{cid}/attendance/report")).json()
        assert [p["name"] for p in report["never_connected"]] == ["Huyện C"]
        assert report["members"]["attended_live"] == 1
        me = (await admin.get(f"/api/v1/conferences/{cid}/attendance/me", headers=as_member)).json()
        assert me["replay_seconds_watched"] == 125.5 and len(me["sessions"]) == 1

        # The point reconnects after the restart: a new session, connected again.
        clients = [await PresenceClient.open(srv.url, cid, tokens["Tỉnh"])]
        await wait_until_async(
            lambda: admin.get(f"/api/v1/conferences/{cid}/attendance/status"),
            60, "reconnect after restart",
            check=lambda r: r.json()["totals"]["connected"] == 1,
        )
    finally:
        await close_many(clients)
        await admin.aclose()
