"""Cluster mode: two nodes on one Redis bus and one database record each session exactly once."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.attendance_clients import PresenceClient, close_many
from tests.support.waiting import wait_until_async
from tests.support.server import ServerFactory, ServerProcess

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out


@pytest.fixture(scope="module")
def two_nodes(start_server: ServerFactory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with start_server.two_nodes("attendance-cluster") as nodes:
        yield nodes


async def test_sessions_are_not_double_counted(two_nodes: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = two_nodes
    cid = a.create_conference()
    admin = httpx.AsyncClient(base_url=b.url, headers={"Authorization": f"Bearer {b.admin_token}"}, timeout=20)
    clients: list[PresenceClient] = []
    try:
        csv = "name,level,parent,summoned\nHuyện Một,district,,10\nHuyện Hai,district,,10\n"
        assert (await admin.post(f"/api/v1/conferences/{cid}/points/import", content=csv.encode(),
                                 headers={"content-type": "text/csv"})).status_code == 200
        links = {x["name"]: x for x in (await admin.post(f"/api/v1/conferences/{cid}/points/tokens")).json()}
        clients = [
            await PresenceClient.open(a.url, cid, links["Huyện Một"]["token"]),
            await PresenceClient.open(b.url, cid, links["Huyện Hai"]["token"]),
        ]
        await wait_until_async(
            lambda: admin.get(f"/api/v1/conferences/{cid}/attendance/status"),
            60, "both points connected",
            check=lambda r: r.json()["totals"]["connected"] == 2,
        )
        await close_many(clients)
        clients = []
        r = await wait_until_async(
            lambda: admin.get(f"/api/v1/conferences/{cid}/attendance/sessions"),
            60, "both sessions closed",
            check=lambda r: r.json() and all(s["left_at"] for s in r.json()),
        )
        sessions = r.json()
        assert sorted(s["subject_id"] for s in sessions) == sorted(x["point_id"] for x in links.values())
        report = (await admin.get(f"/api/v1/conferences/{cid}/attendance/report")).json()
        assert [p["connections"] for p in report["points"]] == [1, 1]
    finally:
        await close_many(clients)
        await admin.aclose()
