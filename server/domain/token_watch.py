"""Ends what a revoked or expired token still holds open on this node: WHIP/WHEP sessions, WebSockets.

Checking a token when a request arrives is not enough: a point's WHEP session or a WebSocket lives
for hours after its one request. Every ``interval`` seconds (and at once after a revocation on this
node) the token ids behind this node's open sessions are looked up in one query per 500 ids; sessions
of tokens that are revoked, expired or gone are closed. Each node of a cluster sweeps its own
sessions, so a revocation made on another node takes effect here at the next sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.domain.tokens import Lifetimes, dead_tokens

log = logging.getLogger(__name__)

Closer = Callable[[], Awaitable[None]]


class TokenWatch:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], media: Any, lifetimes: Lifetimes, interval: float
    ) -> None:
        self.sessionmaker = sessionmaker
        self.media = media  # MediaEngine: ``producers`` and ``consumers`` carry ``owner`` (token id)
        self.lifetimes = lifetimes
        self.interval = interval
        self._sockets: dict[str, set[Closer]] = defaultdict(set)
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.closed = 0  # sessions and sockets closed so far (for tests and logs)

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def poke(self) -> None:
        """Sweep now (a token of this node was just revoked)."""
        self._wake.set()

    def watch_socket(self, token_id: str | None, close: Closer) -> Callable[[], None]:
        """Close this WebSocket (``close``) when its token ends; returns the function that forgets it."""
        if token_id is None:  # the admin token: configured, not revocable here
            return lambda: None
        self._sockets[token_id].add(close)

        def forget() -> None:
            closers = self._sockets.get(token_id)
            if closers is not None:
                closers.discard(close)
                if not closers:
                    del self._sockets[token_id]

        return forget

    def _sessions(self) -> list[Any]:
        return [*self.media.producers.values(), *self.media.consumers.values()]

    async def sweep(self) -> int:
        """Close every session and socket of a dead token; the number closed."""
        ids = {owner for s in self._sessions() if (owner := getattr(s, "owner", None))} | set(self._sockets)
        if not ids:
            return 0
        async with self.sessionmaker() as db:
            dead = await dead_tokens(db, ids, self.lifetimes)
        closed = 0
        for session in [s for s in self._sessions() if getattr(s, "owner", None) in dead]:
            log.info("closing session %s: its token %s was revoked or expired", session.id, session.owner)
            with contextlib.suppress(Exception):
                await session.close()
            closed += 1
        for token_id in dead:
            for close in list(self._sockets.pop(token_id, ())):
                log.info("closing a WebSocket: its token %s was revoked or expired", token_id)
                with contextlib.suppress(Exception):
                    await close()
                closed += 1
        self.closed += closed
        return closed

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            try:
                await self.sweep()
            except Exception:  # a database hiccup must not end the watch
                log.exception("token sweep failed")
