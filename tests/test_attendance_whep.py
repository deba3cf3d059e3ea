"""WHEP playback sessions count as attendance of the point (or member) whose token opened them."""

from __future__ import annotations

import httpx

from tests.support.waiting import wait_until_async
from tests.support.peers import delete_session, subscribe
from tests.support.server import ServerProcess


async def test_whep_sessions_are_attributed_to_point_and_member(server: ServerProcess) -> None:
    cid = server.create_conference()
    admin = httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {server.admin_token}"}, timeout=20)
    subscribers = []
    try:
        point = (await admin.post(f"/api/v1/conferences/{cid}/points",
                                  json={"name": "Xã Tân Lập", "level": "commune", "summoned": 25})).json()
        point_link = (await admin.post(f"/api/v1/conferences/{cid}/points/{point['id']}/token")).json()
        member = (await admin.post(f"/api/v1/conferences/{cid}/members", json={"name": "Trần Thị Bình"})).json()
        member_link = (await admin.post(f"/api/v1/conferences/{cid}/members/{member['id']}/token")).json()
        assert "/viewer.html#conference=" in member_link["link"]

        # Two WHEP sessions of the same point overlap (e.g. a second screen): still one connection.
        subscribers = [await subscribe(server.url, cid, point_link["token"]) for _ in range(2)]
        subscribers.append(await subscribe(server.url, cid, member_link["token"]))
        r = await wait_until_async(
            lambda: admin.get(f"/api/v1/conferences/{cid}/attendance/sessions"),
            60, "WHEP sessions recorded",
            check=lambda r: len(r.json()) == 3,
        )
        sessions = r.json()
        assert all(s["kind"] == "webrtc" and s["left_at"] is None for s in sessions)
        assert sorted((s["subject_type"], s["subject_id"]) for s in sessions) == sorted(
            [("point", point["id"]), ("point", point["id"]), ("member", member["id"])]
        )
        status = (await admin.get(f"/api/v1/conferences/{cid}/attendance/status")).json()
        assert status["totals"]["connected"] == 1 and status["totals"]["members_online"] == 1
        assert status["points"][0]["via"] == ["webrtc"]

        for sub in subscribers:
            assert await delete_session(sub.location, point_link["token"] if sub is not subscribers[2]
                                        else member_link["token"]) == 200
        await wait_until_async(
            lambda: admin.get(f"/api/v1/conferences/{cid}/attendance/sessions"),
            60, "WHEP sessions closed",
            check=lambda r: all(s["left_at"] and s["end_reason"] == "left" for s in r.json()),
        )
        report = (await admin.get(f"/api/v1/conferences/{cid}/attendance/report")).json()
        [line] = report["points"]
        assert line["connections"] == 1 and not line["never_connected"] and not line["connected_now"]
        assert report["members"]["attended_live"] == 1
    finally:
        for sub in subscribers:
            await sub.close()
        await admin.aclose()
