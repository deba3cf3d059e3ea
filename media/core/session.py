"""Session: one peer's WebRTC session on a conference's router, a Producer (WHIP) or a Consumer (WHEP).

Both live and end the same way: the peer connection's state decides (``connected`` hands the session
its transport, ``failed``/``closed`` ends it), and ending leaves the router first, then tells the
engine and the server (``on_close``), then closes the connection.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from media.core.router import Router

log = logging.getLogger(__name__)


class SubscriberIdentity:
    """Whom a subscriber's session serves, for presence and attendance: the engine sets ``owner``
    (token id: who may DELETE it) and ``subject_id`` (point or member) before listeners hear of it.
    Shared by local consumers and the ingest's stand-ins for consumers in worker processes."""

    def __init__(self, role: str, name: str) -> None:
        self.role = role
        self.name = name
        self.owner: str | None = None
        self.subject_id: str | None = None
        self.created = time.time()


class Session:
    def __init__(self, router: Router, pc: Any) -> None:
        self.id = secrets.token_urlsafe(16)
        self.router = router
        self.pc = pc
        self._closed = asyncio.Event()
        self.on_close: list[Callable[[Any], None]] = []

        @pc.on("connectionstatechange")
        async def _state() -> None:
            state = pc.connectionState
            if state == "connected":
                self._connected()
            elif state in ("failed", "closed"):
                await self.close()

    def _connected(self) -> None:
        """DTLS is up: take the transport (the subclass's part)."""

    def _leave_router(self) -> None:
        """Stop sending to or receiving from the router (the subclass's part)."""

    @property
    def conference_id(self) -> str:
        return self.router.conference_id

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._leave_router()
        for cb in self.on_close:
            try:
                cb(self)
            except Exception:
                log.exception("%s close callback failed", type(self).__name__)
        await self.pc.close()
