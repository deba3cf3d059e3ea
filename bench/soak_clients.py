"""The soak's other audience: WebSocket event clients and live-HLS viewers, all coming and going.

A WebSocket client stays connected for a random while (pinging now and then, reading every event),
then closes and connects again. An HLS viewer polls the live playlist like a player (every target
duration), fetches each new segment and its init section once, and now and then "closes the tab"
and starts over. Every request is bounded in time; failures are counted and the last few kept.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import deque
from typing import Any
from urllib.parse import urljoin

import aiohttp
import websockets

from bench import ipc

ERRORS_KEPT = 20
REQUEST_TIMEOUT = 10.0


class Audience:
    def __init__(self) -> None:
        self.stopping = False
        self.ws_connects = self.ws_events = self.ws_errors = 0
        self.hls_playlists = self.hls_segments = self.hls_bytes = self.hls_errors = self.hls_restarts = 0
        self.errors: deque[str] = deque(maxlen=ERRORS_KEPT)
        self.tasks: list[asyncio.Task] = []
        self._http: aiohttp.ClientSession | None = None

    def error(self, text: str) -> None:
        self.errors.append(f"{time.strftime('%H:%M:%S')} {text}"[:300])

    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT))
        return self._http

    async def socket(self, ws_url: str, life: tuple[float, float], seed: int) -> None:
        rng = random.Random(seed)
        await asyncio.sleep(rng.uniform(0, 2))
        while not self.stopping:
            until = time.monotonic() + rng.uniform(*life)
            try:
                async with websockets.connect(ws_url, open_timeout=REQUEST_TIMEOUT, close_timeout=2) as ws:
                    self.ws_connects += 1
                    while not self.stopping and time.monotonic() < until:
                        try:
                            message = await asyncio.wait_for(ws.recv(), timeout=min(2.0, until - time.monotonic()))
                        except asyncio.TimeoutError:
                            await ws.send(json.dumps({"type": "ping"}))
                            continue
                        json.loads(message)
                        self.ws_events += 1
            except Exception as exc:  # noqa: BLE001 - counted; the client reconnects
                if not self.stopping:
                    self.ws_errors += 1
                    self.error(f"ws: {type(exc).__name__}: {exc}")
                    await asyncio.sleep(1.0)
            if not self.stopping:
                await asyncio.sleep(rng.uniform(0.2, 2.0))

    async def viewer(self, playlist_url: str, life: tuple[float, float], seed: int) -> None:
        rng = random.Random(seed)
        await asyncio.sleep(rng.uniform(0, 2))
        while not self.stopping:
            until = time.monotonic() + rng.uniform(*life)
            fetched: set[str] = set()
            self.hls_restarts += 1
            while not self.stopping and time.monotonic() < until:
                wait = 2.0
                try:
                    async with self.http().get(playlist_url) as r:
                        body = await r.text()
                        if r.status == 404:  # nothing recorded yet: players retry
                            await asyncio.sleep(1.0)
                            continue
                        if r.status != 200:
                            raise RuntimeError(f"playlist {r.status}: {body[:100]}")
                    self.hls_playlists += 1
                    uris = []
                    for line in body.splitlines():
                        if line.startswith("#EXT-X-TARGETDURATION:"):
                            wait = float(line.split(":", 1)[1])
                        elif line.startswith("#EXT-X-MAP:") and 'URI="' in line:
                            uris.append(line.split('URI="', 1)[1].split('"', 1)[0])
                        elif line and not line.startswith("#"):
                            uris.append(line)
                    for uri in uris[-3:] if not fetched else uris:  # a player starts near the live edge
                        if uri in fetched:
                            continue
                        async with self.http().get(urljoin(playlist_url, uri)) as r:
                            data = await r.read()
                            if r.status != 200:
                                raise RuntimeError(f"segment {r.status}: {data[:100]!r}")
                        fetched.add(uri)
                        self.hls_segments += 1
                        self.hls_bytes += len(data)
                except Exception as exc:  # noqa: BLE001
                    if self.stopping:
                        return
                    self.hls_errors += 1
                    self.error(f"hls: {type(exc).__name__}: {exc}")
                await asyncio.sleep(min(wait, 6.0))

    def counts(self) -> dict:
        return {
            "ws_connects": self.ws_connects, "ws_events": self.ws_events, "ws_errors": self.ws_errors,
            "hls_playlists": self.hls_playlists, "hls_segments": self.hls_segments,
            "hls_bytes": self.hls_bytes, "hls_errors": self.hls_errors, "hls_restarts": self.hls_restarts,
            "errors": list(self.errors),
        }

    async def handle(self, m: dict) -> dict:
        op = m["op"]
        if op == "start":
            base, conf = m["url"], m["conference"]
            ws_base = base.replace("http://", "ws://", 1)
            life = (float(m["life"][0]), float(m["life"][1]))
            for i, token in enumerate(m["socket_tokens"]):
                url = f"{ws_base}/ws/conferences/{conf}?token={token}"
                self.tasks.append(asyncio.ensure_future(self.socket(url, life, seed=i)))
            for i, token in enumerate(m["hls_tokens"]):
                url = f"{base}/hls/{conf}/index.m3u8?token={token}"
                self.tasks.append(asyncio.ensure_future(self.viewer(url, life, seed=1000 + i)))
            return {}
        if op == "status":
            return self.counts()
        if op == "stop":
            self.stopping = True
            done, pending = await asyncio.wait(self.tasks, timeout=float(m.get("grace", 15)))
            for t in pending:
                t.cancel()
            for t in done:
                if not t.cancelled() and t.exception() is not None:
                    self.error(f"client ended: {t.exception()!r}")
            if self._http is not None:
                await self._http.close()
                self._http = None
            return self.counts()
        raise ValueError(f"unknown op {op}")


def main(conn: Any) -> None:
    ipc.child_setup()

    async def run() -> None:
        await ipc.serve(conn, Audience().handle)

    asyncio.run(run())
