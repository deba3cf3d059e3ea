"""The soak's churning WHEP subscribers: slots that join, watch for a while, leave, and join again.

Each slot runs one subscriber at a time (bench.loadgen's: a real aiortc peer, ICE, DTLS and SRTP,
receiver reports every second, NACKs for gaps, no decoding) for a random lifetime, then leaves the
way a connection point does: most DELETE their WHEP session and close the peer connection, some
only close it (a closed browser tab: the server sees the DTLS close). Then it joins again with a
fresh peer connection after a short pause. Every slot has its own token.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import deque
from typing import Any

from bench import ipc
from bench.loadgen import LoadGen, Subscriber, _no_decoder_threads, _steady_priority
from media.transport.ice import restrict_host_addresses

ERRORS_KEPT = 20  # the last few error messages are reported as they were


class ChurnGen(LoadGen):
    """A load generator whose subscribers come and go; forgets those that have left."""

    def __init__(self) -> None:
        super().__init__()
        self.url = ""
        self.stopping = False
        self.joins = self.leaves = self.deletes = self.vanishes = 0
        self.failed_joins = 0
        self.delete_errors = 0
        self.without_media = 0  # lived long enough but never saw a keyframe
        self.keyframe_delays: list[float] = []
        self.errors: deque[str] = deque(maxlen=ERRORS_KEPT)
        self._ids = itertools.count()
        self._slots: list[asyncio.Task] = []

    def on_event(self, kind: int, fd: int, stream: int, *rest: Any) -> None:
        if 0 <= stream < len(self.cstreams) and self.cstreams[stream][0] is None:
            return  # a stream of a subscriber that has left
        super().on_event(kind, fd, stream, *rest)

    def forget(self, sub: Subscriber) -> None:
        """Drop what the load generator keeps of a subscriber that has left (its streams stay
        numbered: the C receive loop refers to them by index)."""
        if sub in self.subs:
            self.subs.remove(sub)
        if sub.fd is not None and self.by_fd.get(sub.fd, (None,))[0] is sub:
            self.remove_socket(sub.fd)
        for i, (owner, _st) in enumerate(self.cstreams):
            if owner is sub:
                self.cstreams[i] = (None, None)
        self.ports.discard(sub.port)

    def error(self, text: str) -> None:
        self.errors.append(f"{time.strftime('%H:%M:%S')} {text}"[:300])

    async def slot(self, token: str, life: tuple[float, float], pause: float, vanish: float, seed: int) -> None:
        rng = random.Random(seed)
        await asyncio.sleep(rng.uniform(0, life[0]))  # the slots start spread out, not as one storm
        while not self.stopping:
            sub = Subscriber(self, next(self._ids), token)
            try:
                await sub.prepare()
                await sub.join(self.url, 0.0)
            except Exception as exc:  # noqa: BLE001 - counted, the slot goes on
                sub.error = sub.error or f"{type(exc).__name__}: {exc}"
            if sub.error:
                self.failed_joins += 1
                self.error(f"join: {sub.error}")
                await self._leave(sub, delete=False)
                await asyncio.sleep(1.0)
                continue
            self.joins += 1
            self.subs.append(sub)
            lifetime = rng.uniform(*life)
            born = time.time()
            while not self.stopping and time.time() - born < lifetime:
                await asyncio.sleep(min(0.5, lifetime))
            if sub.t_key is not None and sub.t_post is not None:
                self.keyframe_delays.append(sub.t_key - sub.t_post)
                del self.keyframe_delays[:-1000]
            elif time.time() - born > 8.0:
                self.without_media += 1
                self.error(f"subscriber {sub.index} saw no keyframe in {time.time() - born:.0f} s")
            await self._leave(sub, delete=rng.random() >= vanish)
            if not self.stopping:
                await asyncio.sleep(rng.uniform(0, pause))

    async def _leave(self, sub: Subscriber, delete: bool) -> None:
        if delete and sub.location:
            self.deletes += 1
            url = sub.location if sub.location.startswith("http") else self.url.split("/whep/")[0] + sub.location
            try:
                async with self.http().delete(url, headers={"Authorization": f"Bearer {sub.token}"}) as r:
                    if r.status != 200:
                        self.delete_errors += 1
                        self.error(f"DELETE {r.status}: {(await r.text())[:100]}")
            except Exception as exc:  # noqa: BLE001
                self.delete_errors += 1
                self.error(f"DELETE: {type(exc).__name__}: {exc}")
        elif sub.location:
            self.vanishes += 1
        await sub.close()
        self.forget(sub)
        if sub.location:
            self.leaves += 1

    def counts(self) -> dict:
        delays = sorted(self.keyframe_delays)
        return {
            "joins": self.joins, "leaves": self.leaves, "deletes": self.deletes, "vanishes": self.vanishes,
            "failed_joins": self.failed_joins, "delete_errors": self.delete_errors,
            "without_media": self.without_media, "connected": sum(1 for s in self.subs if s.taken and not s.closed),
            "keyframe_p50": delays[len(delays) // 2] if delays else None,
            "keyframe_p95": delays[int(len(delays) * 0.95)] if delays else None,
            "rtcp_errors": self.rtcp_errors, "errors": list(self.errors),
        }

    async def handle(self, m: dict) -> dict:
        op = m["op"]
        if op == "start":
            self.url = m["url"]
            self.tasks.append(asyncio.ensure_future(self._reports()))
            self.tasks.append(asyncio.ensure_future(self._read()))
            life = (float(m["life"][0]), float(m["life"][1]))
            for i, token in enumerate(m["tokens"]):
                self._slots.append(asyncio.ensure_future(
                    self.slot(token, life, float(m["pause"]), float(m["vanish"]), seed=m.get("seed", 0) * 1000 + i)))
            return {}
        if op == "status":
            return self.counts()
        if op == "stop":
            self.stopping = True
            done, pending = await asyncio.wait(self._slots, timeout=float(m.get("timeout", 30)))
            for t in pending:
                t.cancel()
            for t in done:
                if not t.cancelled() and t.exception() is not None:
                    self.error(f"slot ended: {t.exception()!r}")
            for sub in list(self.subs):
                await sub.close()
                self.forget(sub)
            for t in self.tasks:
                t.cancel()
            if self._http is not None:
                await self._http.close()
                self._http = None
            return {**self.counts(), "unfinished_slots": len(pending)}
        raise ValueError(f"unknown op {op}")


def main(conn: Any) -> None:
    ipc.child_setup()
    _steady_priority(False)  # the server has the cores first; arrival timing is not measured here
    restrict_host_addresses(["127.0.0.1"])
    _no_decoder_threads()

    async def run() -> None:
        await ipc.serve(conn, ChurnGen().handle)

    asyncio.run(run())
