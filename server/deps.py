"""FastAPI dependencies: database session, caller identity and role checks."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.ext.asyncio import AsyncSession

from server.domain.tokens import Principal, resolve_token


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    """A session per request, committed when the endpoint returns and before the response is sent.

    Depend on it through ``DB`` below: with FastAPI's default (request) scope the commit would run
    after sending, and a client acting on a 201 at once would not find the row yet.
    """
    async with request.app.state.sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


# ``db: AsyncSession = DB`` in every endpoint: function scope, so writes are committed before replying.
DB = Depends(get_db, scope="function")


async def release(db: AsyncSession) -> None:
    """End the request's transaction and give its pooled connection back before slow work that
    needs none (reading an SDP body, ICE/DTLS set-up). The pool holds 15 connections: in a join
    storm, hundreds of WHEP requests each holding one through negotiation queued behind each other
    (and past the pool's 30 s timeout they would fail). Later use of ``db`` starts a new transaction.
    """
    await db.commit()


# Paths whose clients cannot set an Authorization header: media players (<video>, hls.js, smart TVs)
# for HLS and recordings, browsers' WebSockets, and WHIP/WHEP clients configured with a bare URL.
# Everywhere else ``?token=`` is ignored, so a token pasted into a URL is not honoured, and so not
# encouraged, where it would end up in browser history, proxies' logs and Referer headers.
QUERY_TOKEN_PREFIXES = ("/whip/", "/whep/", "/ws/", "/hls/", "/recordings/")


def query_token_allowed(path: str) -> bool:
    return path.startswith(QUERY_TOKEN_PREFIXES)


def bearer_secret(request: Request) -> str | None:
    """Bearer header, or ``?token=`` on the media, HLS and WebSocket paths (``QUERY_TOKEN_PREFIXES``)."""
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    if query_token_allowed(request.url.path):
        return request.query_params.get("token") or None
    return None


async def identify(secret: str | None, request: Request, db: AsyncSession) -> Principal | None:
    """The admin, or the holder of a live token; None for a missing, unknown, revoked or expired one."""
    if not secret:
        return None
    settings = request.app.state.settings
    admin = settings.admin_token
    if admin and hmac.compare_digest(secret.encode(), admin.encode()):
        return Principal(role="admin")
    return await resolve_token(db, secret, settings.token_lifetime_days)


async def get_principal(request: Request, db: AsyncSession = DB) -> Principal:
    secret = bearer_secret(request)
    if not secret:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = await identify(secret, request, db)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid or revoked token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return principal


async def optional_principal(request: Request, db: AsyncSession = DB) -> Principal | None:
    """None without a token (e.g. WHIP/WHEP OPTIONS discovery); 401 for an invalid, revoked or expired one."""
    if not bearer_secret(request):
        return None
    return await get_principal(request, db)


def require_admin(principal: Principal = Depends(get_principal)) -> Principal:
    if not principal.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "admin token required")
    return principal


def authorize(principal: Principal, conference_id: str, *roles: str) -> None:
    """Admin may do anything; others only their own conference and only with one of ``roles``."""
    if principal.is_admin:
        return
    if principal.conference_id != conference_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "token belongs to another conference")
    if principal.role not in roles:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"role '{principal.role}' may not do this (needs: {', '.join(roles)})",
        )
