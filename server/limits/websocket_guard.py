"""WebSocket limits as ASGI middleware: open sockets per token, and the size and rate of client messages.

Kept outside the event endpoint so every WebSocket route gets them and none can forget to release a
count: a socket is counted from its handshake until its endpoint returns. A socket over a message limit
is closed with a policy code (1009 too big, 1008 too many) and its endpoint sees a disconnect; other
sockets, of the same token or not, are untouched.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.limits.whep_places import RETRY_AFTER_SECONDS

CLOSE_POLICY = 1008  # RFC 6455: policy violation
CLOSE_TOO_BIG = 1009  # RFC 6455: message too big


class MessageGuard:
    """Wraps one socket's receive/send: a token bucket of ``burst`` messages refilled at ``rate`` per second."""

    def __init__(self, receive: Receive, send: Send, max_bytes: int, rate: float, burst: int) -> None:
        self._receive = receive
        self._send = send
        self.max_bytes = max_bytes
        self.rate = rate
        self.burst = burst
        self.allowance = float(burst)
        self.stamp = time.monotonic()
        self.closed: Message | None = None

    async def receive(self) -> Message:
        if self.closed is not None:
            return self.closed
        message = await self._receive()
        if message["type"] != "websocket.receive":
            return message
        size = len(message.get("bytes") or b"") + len((message.get("text") or "").encode())
        if self.max_bytes and size > self.max_bytes:
            return await self._close(CLOSE_TOO_BIG, f"message over {self.max_bytes} bytes")
        if self.rate > 0:
            now = time.monotonic()
            self.allowance = min(float(self.burst), self.allowance + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.allowance < 1.0:
                return await self._close(
                    CLOSE_POLICY, f"over {self.burst} messages at once or {self.rate:g} per second"
                )
            self.allowance -= 1.0
        return message

    async def send(self, message: Message) -> None:
        if self.closed is None:  # after the guard closed the socket, the endpoint's sends go nowhere
            await self._send(message)

    async def _close(self, code: int, reason: str) -> Message:
        self.closed = {"type": "websocket.disconnect", "code": code, "reason": reason}
        await self._send({"type": "websocket.close", "code": code, "reason": reason})
        return self.closed


class WebSocketLimits:
    """ASGI middleware applying the per-token socket cap and each socket's ``MessageGuard``."""

    def __init__(
        self, app: ASGIApp, per_token: int, max_message_bytes: int, rate: float, burst: int
    ) -> None:
        self.app = app
        self.per_token = per_token  # 0 = no cap
        self.max_message_bytes = max_message_bytes
        self.rate = rate
        self.burst = burst
        self.open: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        key = token_key(scope)
        if self.per_token and key is not None and self.open[key] >= self.per_token:
            await refuse(scope, receive, send, f"this token already has {self.open[key]} event sockets "
                         f"open (limit {self.per_token})")
            return
        if key is not None:
            self.open[key] += 1
        guard = MessageGuard(receive, send, self.max_message_bytes, self.rate, self.burst)
        try:
            await self.app(scope, guard.receive, guard.send)
        finally:
            if key is not None:
                self.open[key] -= 1
                if self.open[key] <= 0:
                    del self.open[key]


def token_key(scope: Scope) -> str | None:
    """The socket's token (``?token=`` or a bearer header), hashed: the counts need no secrets."""
    secret = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token") or [""])[0]
    if not secret:
        auth = Headers(scope=scope).get("authorization", "")
        secret = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    return hashlib.sha256(secret.encode()).hexdigest() if secret else None


async def refuse(scope: Scope, receive: Receive, send: Send, detail: str) -> None:
    """Answer the handshake with 429 and ``Retry-After`` (a close, i.e. 403, where the server cannot)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if "websocket.http.response" in scope.get("extensions", {}):
        response = JSONResponse({"detail": detail}, 429, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        await response(scope, receive, send)
    else:
        await send({"type": "websocket.close", "code": CLOSE_POLICY, "reason": "too many sockets"})
