"""Request body size limit, applied before anything parses the body.

FastAPI reads and parses a JSON body before it resolves the caller's token, so without a limit an
anonymous multi-gigabyte POST would be read into memory first. ``BodyLimit`` refuses a body whose
``Content-Length`` is over the limit at the first read (no byte of it is taken, and a client that sent
``Expect: 100-continue`` is never told to continue), and cuts off a chunked body as soon as what
arrived passes it. Upload endpoints (materials, CSV imports) raise the limit of their own request with
``allow_upload`` once the caller is authorised: they check their own ``max_upload_bytes``.
"""

from __future__ import annotations

from fastapi import HTTPException, Request, status
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SCOPE_KEY = "diemcau.body_budget"
UPLOAD_OVERHEAD = 64 * 1024  # multipart boundaries and part headers around an uploaded file


class BodyTooLarge(HTTPException):
    """An HTTPException, so FastAPI's body parsing and the endpoints pass it on as a 413 response."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            f"the request body is larger than the limit of {limit} bytes",
        )


class BodyBudget:
    """The limit of one request's body and what has arrived of it so far."""

    def __init__(self, limit: int, declared: int | None) -> None:
        self.limit = limit
        self.declared = declared
        self.received = 0

    def wrap(self, receive: Receive) -> Receive:
        async def limited_receive() -> Message:
            if self.declared is not None and self.declared > self.limit:
                raise BodyTooLarge(self.limit)
            message = await receive()
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
                if self.received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        return limited_receive


class BodyLimit:
    """ASGI middleware: every HTTP request's body is limited to ``max_bytes`` unless its endpoint allows more."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        budget = BodyBudget(self.max_bytes, declared_length(scope))
        scope[SCOPE_KEY] = budget
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, budget.wrap(receive), tracking_send)
        except BodyTooLarge as exc:  # raised where no exception handler turned it into a response
            if started:
                raise
            await JSONResponse({"detail": exc.detail}, exc.status_code)(scope, receive, send)


def declared_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    return int(value) if value is not None and value.isdigit() else None


def allow_body(request: Request, limit: int) -> None:
    """Let this request's body be up to ``limit`` bytes (call before reading it)."""
    budget: BodyBudget | None = request.scope.get(SCOPE_KEY)
    if budget is not None:
        budget.limit = limit


def allow_upload(request: Request, max_upload_bytes: int) -> None:
    """An upload endpoint's body: the file (the ``max_upload_bytes`` setting) and its multipart framing."""
    allow_body(request, max_upload_bytes + UPLOAD_OVERHEAD)
