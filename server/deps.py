"""FastAPI dependencies: the lifespan's services, a database session, caller identity and role checks.

Endpoints declare what they use as ``Annotated`` types (``media: MediaDep``, ``db: DbDep``), each read
from the :class:`~server.services.Services` the lifespan built (Starlette hands the lifespan's state
to every request and WebSocket), so no router or domain module reaches into ``app.state``.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Request, status
from fastapi.requests import HTTPConnection
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from media.engine import MediaEngine
from server.domain.attendance_log import AttendanceLog
from server.domain.floor import FloorService
from server.domain.quality import QualityService
from server.domain.questions import SubmitRate
from server.domain.recordings import RecordingService
from server.domain.replay_meter import ReplayMeter
from server.domain.signed_links import LinkHolders
from server.domain.token_watch import TokenWatch
from server.domain.tokens import Principal, resolve_token
from server.events.bus import EventBus
from server.limits.whep_places import WhepPlaces
from server.metrics.scrape import Metrics
from server.services import Services
from server.settings import Settings


T = TypeVar("T")


def _from_services(part: Callable[[Services], T]) -> Callable[[HTTPConnection], Awaitable[T]]:
    """A dependency returning one part of the :class:`Services` the lifespan yielded. Async although it
    awaits nothing: FastAPI runs a plain function dependency in its thread pool, a thread hop per
    dependency per request (with half a dozen of them, most of an HLS request's CPU)."""

    async def dependency(conn: HTTPConnection) -> T:
        return part(conn.state.services)

    return dependency


SettingsDep = Annotated[Settings, Depends(_from_services(lambda s: s.settings))]
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(_from_services(lambda s: s.sessionmaker))]
BusDep = Annotated[EventBus, Depends(_from_services(lambda s: s.bus))]
MediaDep = Annotated[MediaEngine, Depends(_from_services(lambda s: s.media))]
WhepPlacesDep = Annotated[WhepPlaces, Depends(_from_services(lambda s: s.whep_places))]
AttendanceLogDep = Annotated[AttendanceLog, Depends(_from_services(lambda s: s.attendance_log))]
RecordingsDep = Annotated[RecordingService, Depends(_from_services(lambda s: s.recordings))]
LinkHoldersDep = Annotated[LinkHolders, Depends(_from_services(lambda s: s.link_holders))]
ReplayMeterDep = Annotated[ReplayMeter, Depends(_from_services(lambda s: s.replay_meter))]
TokenWatchDep = Annotated[TokenWatch, Depends(_from_services(lambda s: s.token_watch))]
FloorDep = Annotated[FloorService, Depends(_from_services(lambda s: s.floor))]
QuestionRateDep = Annotated[SubmitRate, Depends(_from_services(lambda s: s.question_rate))]
QualityDep = Annotated[QualityService, Depends(_from_services(lambda s: s.quality))]
MetricsDep = Annotated[Metrics, Depends(_from_services(lambda s: s.metrics))]


async def public_base_url(conn: HTTPConnection) -> str:
    """Base of every absolute URL handed out (join, HLS and signed links, WHIP/WHEP ``Location``):
    ``public_url`` when set, else the scheme and ``Host`` this request arrived with, the scheme being
    a trusted proxy's ``X-Forwarded-Proto`` (uvicorn applies it for ``forwarded_allow_ips``)."""
    return (conn.state.services.settings.public_url or str(conn.base_url)).rstrip("/")


PublicUrlDep = Annotated[str, Depends(public_base_url)]


async def get_db(sessionmaker: SessionmakerDep) -> AsyncIterator[AsyncSession]:
    """A session per request, committed when the endpoint returns and before the response is sent.

    Depend on it through ``DbDep`` below: with FastAPI's default (request) scope the commit would run
    after sending, and a client acting on a 201 at once would not find the row yet.
    """
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


# ``db: DbDep`` in every endpoint: function scope, so writes are committed before replying.
DbDep = Annotated[AsyncSession, Depends(get_db, scope="function")]


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
    return presented_secret(request.headers.get("authorization", ""), request.url.path, request.query_params)


def presented_secret(authorization: str, path: str, query: Mapping[str, str]) -> str | None:
    """:func:`bearer_secret` of a request given by its parts: its Authorization header (or ""), its path
    and its query (the nginx front asks whether a request it holds may be answered: ``/hls-auth``)."""
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip() or None
    if query_token_allowed(path):
        return query.get("token") or None
    return None


async def identify(secret: str | None, settings: Settings, db: AsyncSession) -> Principal | None:
    """The admin, or the holder of a live token; None for a missing, unknown, revoked or expired one."""
    if not secret:
        return None
    admin = settings.admin_token
    if admin and hmac.compare_digest(secret.encode(), admin.encode()):
        return Principal(role="admin")
    return await resolve_token(db, secret, settings.token_lifetime_days)


async def get_principal(request: Request, db: DbDep, settings: SettingsDep) -> Principal:
    secret = bearer_secret(request)
    if not secret:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = await identify(secret, settings, db)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid or revoked token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return principal


async def optional_principal(request: Request, db: DbDep, settings: SettingsDep) -> Principal | None:
    """None without a token (e.g. WHIP/WHEP OPTIONS discovery); 401 for an invalid, revoked or expired one."""
    if not bearer_secret(request):
        return None
    return await get_principal(request, db, settings)


PrincipalDep = Annotated[Principal, Depends(get_principal)]
OptionalPrincipalDep = Annotated[Principal | None, Depends(optional_principal)]


async def require_admin(principal: PrincipalDep) -> Principal:
    if not principal.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "admin token required")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]


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
