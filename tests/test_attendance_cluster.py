"""Cluster mode: two nodes on one Redis bus and one database record each session exactly once."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.attendance_clients import PresenceClient, close_many, wait_until
from tests.support.redis_server import RedisServer
from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    base = tmp_path_factory.mktemp("attendance-cluster")
    redis_server = RedisServer(base / "redis").start()
    env = {
        "DIEMCAU_REDIS_URL": redis_server.url,
        "DIEMCAU_DATABASE_URL": f"sqlite+aiosqlite:///{base / 'shared.db'}",
        "DIEMCAU_WORKERS": "1",
    }
    a = ServerProcess(base / "a", env=env).start()
    b = ServerProcess(base / "b", env=env).start()
    yield a, b
    b.stop()
    a.stop()
    redis_server.stop()


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
        await wait_until(
            lambda: admin.get(f"/api/v1/conferences/{cid}/attendance/status"),
            lambda r: r.json()["totals"]["connected"] == 2,
            what="both points connected",
        )
        await close_many(clients)
        clients = []
        r = await wait_until(
            lambda: admin.get(f"/api/v1/conferences/{cid}/attendance/sessions"),
            lambda r: r.json() and all(s["left_at"] for s in r.json()),
            what="both sessions closed",
        )
        sessions = r.json()
        assert sorted(s["subject_id"] for s in sessions) == sorted(x["point_id"] for x in links.values())
        report = (await admin.get(f"/api/v1/conferences/{cid}/attendance/report")).json()
        assert [p["connections"] for p in report["points"]] == [1, 1]
    finally:
        await close_many(clients)
        await admin.aclose()
