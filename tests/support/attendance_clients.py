"""Helpers for attendance tests: a seeded three-level hierarchy and WebSocket presence clients.

A ``PresenceClient`` holds the conference WebSocket open exactly as a point or viewer page does,
so joins and leaves reach the attendance records through the real server path.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

PROVINCE = "Tỉnh Minh Sơn"
DISTRICTS = 10
COMMUNES = 225


@dataclass(frozen=True)
class SeedPoint:
    index: int
    name: str
    level: str
    parent: str
    summoned: int


def hierarchy() -> list[SeedPoint]:
    """1 province, 10 districts, 225 communes (23 in the first five districts, 22 in the rest)."""
    points = [SeedPoint(0, PROVINCE, "province", "", 150)]
    districts = [f"Huyện Số {d:02d}" for d in range(1, DISTRICTS + 1)]
    for d, name in enumerate(districts, start=1):
        points.append(SeedPoint(len(points), name, "district", PROVINCE, 40 + d))
    for d, district in enumerate(districts, start=1):
        for c in range(1, (23 if d <= 5 else 22) + 1):
            i = len(points)
            points.append(SeedPoint(i, f"Xã {d:02d}-{c:02d}", "commune", district, 200 + (i * 37) % 150))
    assert len(points) == 1 + DISTRICTS + COMMUNES
    return points


def hierarchy_csv(points: list[SeedPoint], delimiter: str = ",") -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(["name", "level", "parent", "summoned"])
    for p in points:
        writer.writerow([p.name, p.level, p.parent, p.summoned])
    return out.getvalue()


class PresenceClient:
    """One open conference WebSocket; incoming events are drained in the background."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, base_url: str, conference_id: str, token: str) -> PresenceClient:
        url = base_url.replace("http://", "ws://") + f"/ws/conferences/{conference_id}?token={token}"
        ws = await connect(url, proxy=None, compression=None, open_timeout=10, close_timeout=5, max_queue=None)
        return cls(ws)

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                event = json.loads(raw)
                if event.get("type") in ("snapshot", "headcount.reported"):
                    self.events.append(event)

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 5)
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


async def open_many(
    base_url: str, conference_id: str, tokens: list[str], concurrency: int = 40
) -> list[PresenceClient]:
    limit = asyncio.Semaphore(concurrency)

    async def one(token: str) -> PresenceClient:
        async with limit:
            return await PresenceClient.open(base_url, conference_id, token)

    return list(await asyncio.gather(*(one(t) for t in tokens)))


async def close_many(clients: list[PresenceClient]) -> None:
    await asyncio.gather(*(c.close() for c in clients))
