"""A realistic conference: 236 points imported from CSV join over real WebSockets at staggered
times (some late, some leaving early, some never), report headcounts, and the report is exact."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from decimal import ROUND_HALF_UP, Decimal

import httpx
import pytest

from tests.support.attendance_clients import (
    PresenceClient,
    SeedPoint,
    close_many,
    hierarchy,
    hierarchy_csv,
    open_many,
)
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.slow


def pct(present: int, summoned: int) -> float:
    return float((Decimal(present) * 100 / Decimal(summoned)).quantize(Decimal("0.1"), ROUND_HALF_UP))


class Plan:
    """Who does what, decided by the point's index so the expectations are easy to recompute."""

    def __init__(self, points: list[SeedPoint]) -> None:
        self.points = points
        self.never = {p.name for p in points if p.index % 17 == 5}
        connected = [p for p in points if p.name not in self.never]
        self.late = {p.name for p in connected if p.index % 11 == 3}
        self.on_time = {p.name for p in connected if p.name not in self.late}
        self.early = {p.name for p in connected if p.index % 13 == 7}
        self.silent = {p.name for p in connected if p.index % 19 == 2}  # never report a headcount
        self.overlap = {p.name for p in connected if p.index % 23 == 4}  # a second, overlapping socket
        self.reporters = {p.name for p in connected if p.name not in self.silent}

    def present(self, p: SeedPoint) -> int:
        return p.summoned - p.index % 6 if p.name in self.reporters else 0


async def _status(client: httpx.AsyncClient, cid: str) -> dict:
    r = await client.get(f"/api/v1/conferences/{cid}/attendance/status")
    r.raise_for_status()
    return r.json()


async def _report_headcounts(
    server: ServerProcess, cid: str, plan: Plan, ids: dict[str, str], tokens: dict[str, str],
    clients: dict[str, PresenceClient],
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        for p in plan.points:
            if p.name not in plan.reporters:
                continue
            values = ([p.summoned // 2] if p.index % 5 == 0 else []) + [plan.present(p)]
            for value in values:  # a first count at the start, then the corrected one
                if p.index % 7 == 1:
                    r = await http.post(
                        f"/api/v1/conferences/{cid}/points/{ids[p.name]}/headcount",
                        json={"present": value},
                        headers={"Authorization": f"Bearer {tokens[p.name]}"},
                    )
                    assert r.status_code == 201, r.text
                else:
                    await clients[p.name].send({"type": "headcount", "present": value})


async def test_seeded_conference_report_is_exact(server: ServerProcess) -> None:
    points = hierarchy()
    plan = Plan(points)
    now = dt.datetime.now(dt.UTC)
    cid = server.create_conference(
        title="Hội nghị quán triệt Nghị quyết",
        scheduled_start=(now + dt.timedelta(hours=1)).isoformat(),
        scheduled_end=(now + dt.timedelta(hours=3)).isoformat(),
    )
    organiser = server.token(cid, "organiser", "Ban Tổ chức")
    api = httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {organiser}"}, timeout=30)
    clients: dict[str, PresenceClient] = {}
    extra: list[PresenceClient] = []
    try:
        r = await api.post(
            f"/api/v1/conferences/{cid}/points/import",
            content=hierarchy_csv(points).encode(),
            headers={"content-type": "text/csv"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["created"] == 236
        r = await api.post(f"/api/v1/conferences/{cid}/points/tokens")
        assert r.status_code == 200, r.text
        links = r.json()
        tokens = {x["name"]: x["token"] for x in links}
        ids = {x["name"]: x["point_id"] for x in links}
        assert len(tokens) == 236 and all("/point.html#conference=" in x["link"] for x in links)

        # Phase A: the punctual points join in staggered waves.
        on_time = [p.name for p in points if p.name in plan.on_time]
        for wave in range(4):
            names = on_time[wave::4]
            clients.update(zip(names, await open_many(server.url, cid, [tokens[n] for n in names])))
            await asyncio.sleep(0.1)
        await wait_until_async(
            lambda: _status(api, cid),
            60, "on-time joins",
            check=lambda s: s["totals"]["connected"] == len(on_time),
        )
        cutoff = dt.datetime.now(dt.UTC)  # everything before is on time, everything after is late
        await asyncio.sleep(0.05)

        # Phase B: latecomers, plus a second overlapping socket for some points (e.g. a reload).
        late = [p.name for p in points if p.name in plan.late]
        for wave in range(2):
            names = late[wave::2]
            clients.update(zip(names, await open_many(server.url, cid, [tokens[n] for n in names])))
            await asyncio.sleep(0.1)
        overlap = sorted(plan.overlap)
        extra = await open_many(server.url, cid, [tokens[n] for n in overlap])
        connected = len(plan.on_time) + len(plan.late)
        r = await wait_until_async(
            lambda: api.get(f"/api/v1/conferences/{cid}/attendance/sessions", params={"limit": 10000}),
            60, "all sessions recorded",
            check=lambda r: len(r.json()) == connected + len(overlap),
        )
        assert {s["subject_id"] for s in r.json()} == {ids[n] for n in plan.on_time | plan.late}
        assert all(s["kind"] == "presence" and s["subject_type"] == "point" for s in r.json())
        await close_many(extra)

        # Headcounts over the WebSocket and over HTTP; some points correct their first count.
        await _report_headcounts(server, cid, plan, ids, tokens, clients)
        expected_present = {ids[p.name]: plan.present(p) for p in points if p.name in plan.reporters}
        status = await wait_until_async(
            lambda: _status(api, cid),
            60, "headcounts",
            check=lambda s: {x["id"]: x["headcount"] for x in s["points"] if x["headcount"] is not None}
            == expected_present,
        )
        assert status["totals"]["connected"] == connected

        # An operator cannot report for another point, over HTTP or the WebSocket.
        a, b = sorted(plan.reporters)[:2]
        r = await api.post(
            f"/api/v1/conferences/{cid}/points/{ids[b]}/headcount",
            json={"present": 1},
            headers={"Authorization": f"Bearer {tokens[a]}"},
        )
        assert r.status_code == 403 and "own point" in r.json()["detail"]
        await clients[a].send({"type": "headcount", "present": 1, "point_id": ids[b]})

        # Phase C: some points leave before the scheduled end.
        await close_many([clients.pop(n) for n in sorted(plan.early)])
        status = await wait_until_async(
            lambda: _status(api, cid),
            60, "early leaves",
            check=lambda s: s["totals"]["connected"] == connected - len(plan.early),
        )
        flags = {x["name"]: (x["connected"], x["since"] is not None) for x in status["points"]}
        for p in points:
            now_connected = p.name not in plan.never and p.name not in plan.early
            assert flags[p.name] == (now_connected, now_connected), p.name

        # The scheduled start is set so that the grace period ends exactly at the cut-off.
        r = await api.get(f"/api/v1/conferences/{cid}/attendance/report")
        grace = r.json()["grace_minutes"]
        r = await api.patch(
            f"/api/v1/conferences/{cid}",
            json={"scheduled_start": (cutoff - dt.timedelta(minutes=grace)).isoformat(), "status": "live"},
        )
        assert r.status_code == 200, r.text

        report = (await api.get(f"/api/v1/conferences/{cid}/attendance/report")).json()
        _check_report(report, plan, ids)
        await _check_exports(api, cid, report, plan)
    finally:
        await close_many(list(clients.values()) + extra)
        await api.aclose()


def _check_report(report: dict, plan: Plan, ids: dict[str, str]) -> None:
    points = plan.points
    summoned = sum(p.summoned for p in points)
    present = sum(plan.present(p) for p in points)
    connected = len(plan.on_time) + len(plan.late)
    t = report["totals"]
    assert (t["points"], t["summoned"], t["present"]) == (236, summoned, present)
    assert t["rate"] == pct(present, summoned)
    assert (t["connected"], t["connected_now"], t["never_connected"]) == (
        connected, connected - len(plan.early), len(plan.never)
    )
    assert (t["late"], t["left_early"], t["reported"]) == (len(plan.late), len(plan.early), len(plan.reporters))

    assert {x["name"] for x in report["late"]} == plan.late
    assert {x["name"] for x in report["left_early"]} == plan.early
    assert {x["name"] for x in report["never_connected"]} == plan.never
    assert all(x["minutes_late"] >= report["grace_minutes"] for x in report["late"])

    lines = {x["name"]: x for x in report["points"]}
    for p in points:
        line = lines[p.name]
        assert line["id"] == ids[p.name]
        assert (line["summoned"], line["present"]) == (p.summoned, plan.present(p)), p.name
        assert line["rate"] == pct(plan.present(p), p.summoned)
        assert line["late"] == (p.name in plan.late)
        assert line["left_early"] == (p.name in plan.early)
        assert line["never_connected"] == (p.name in plan.never)
        if p.name not in plan.never:
            assert line["connections"] == 1, p.name  # overlapping sockets are merged into one span

    by_level = {r["level"]: r for r in report["by_level"]}
    assert list(by_level) == ["province", "district", "commune"]
    for level, count in (("province", 1), ("district", 10), ("commune", 225)):
        group = [p for p in points if p.level == level]
        row = by_level[level]
        s, pr = sum(p.summoned for p in group), sum(plan.present(p) for p in group)
        assert (row["points"], row["summoned"], row["present"], row["rate"]) == (count, s, pr, pct(pr, s))
        assert row["never_connected"] == len([p for p in group if p.name in plan.never])
        assert row["late"] == len([p for p in group if p.name in plan.late])

    by_parent = {r["name"]: r for r in report["by_parent"]}
    assert len(by_parent) == 11  # the province and every district have points below them
    for district in [p for p in points if p.level == "district"]:
        group = [district] + [p for p in points if p.parent == district.name]
        row = by_parent[district.name]
        s, pr = sum(p.summoned for p in group), sum(plan.present(p) for p in group)
        assert (row["children"], row["points"]) == (len(group) - 1, len(group))
        assert (row["summoned"], row["present"], row["rate"]) == (s, pr, pct(pr, s))
        assert row["never_connected"] == len([p for p in group if p.name in plan.never])
    province = by_parent[points[0].name]
    assert (province["children"], province["points"], province["summoned"]) == (10, 236, summoned)


async def _check_exports(api: httpx.AsyncClient, cid: str, report: dict, plan: Plan) -> None:
    r = await api.get(f"/api/v1/conferences/{cid}/attendance/report.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(rows) == 236
    by_name = {row["name"]: row for row in rows}
    for p in plan.points:
        assert int(by_name[p.name]["present"]) == plan.present(p)
        assert by_name[p.name]["never_connected"] == str(p.name in plan.never)

    r = await api.get(f"/api/v1/conferences/{cid}/attendance/report.csv", params={"table": "levels"})
    last = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))[-1]
    t = report["totals"]
    assert last[0] == "total" and last[7:9] == [str(t["summoned"]), str(t["present"])]
    assert last[9] == f"{t['rate']:.1f}%"

    r = await api.get(f"/api/v1/conferences/{cid}/attendance/report.csv", params={"table": "late"})
    assert {row["name"] for row in csv.DictReader(io.StringIO(r.content.decode("utf-8-sig")))} == plan.late

    r = await api.get(f"/api/v1/conferences/{cid}/attendance/report.html")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert f"{t['rate']:.1f}%" in r.text and "Xã 01-01" in r.text
