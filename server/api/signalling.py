"""Shared HTTP plumbing of WHIP (RFC 9725) and WHEP: body limits, ICE ``Link`` headers, errors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from fastapi import APIRouter, HTTPException, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from media.core.sdp_check import OfferError, check_offer
from media.transport.port_range import PortsExhausted
from server.api.guards import conference_for
from server.deps import DbDep, MediaDep, OptionalPrincipalDep, PrincipalDep, SettingsDep, release
from server.domain import ice_servers
from server.domain.tokens import Principal
from server.settings import Settings

SDP_TYPE = "application/sdp"
PORTS_RETRY_AFTER = 10  # seconds: sessions end and free their ports all the time
SDP_ANSWER = {201: {"content": {SDP_TYPE: {}}, "description": "SDP answer"}}  # the POST's OpenAPI


class _Session(Protocol):
    """What WHIP producers and WHEP consumers have in common for their session URL."""

    conference_id: str

    async def close(self) -> Any: ...


async def read_offer(request: Request, direction: str, limit: int) -> str:
    """The SDP offer in the body, checked: at most ``limit`` bytes, UTF-8, an offer to ``direction``."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != SDP_TYPE:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"Content-Type must be {SDP_TYPE} (got '{ctype or 'none'}')",
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"SDP offer over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"SDP offer over {limit} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "SDP offer is not UTF-8 text")
    try:
        check_offer(text, direction)
    except OfferError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc))
    return text


def ice_link_headers(settings: Settings, principal: Principal | None) -> list[str]:
    """ICE servers as ``Link`` headers, for an authenticated caller only (TURN credentials are secrets)."""
    if principal is None:
        return []
    user = principal.token_id or "admin"
    links = []
    for server in ice_servers.for_client(settings, user):
        link = f'<{server["urls"]}>; rel="ice-server"'
        if server["username"]:
            link += (
                f'; username="{server["username"]}"; credential="{server["credential"]}"'
                '; credential-type="password"'
            )
        links.append(link)
    return links


def session_response(
    settings: Settings, location: str, answer_sdp: str, etag: str, principal: Principal
) -> Response:
    response = Response(content=answer_sdp, status_code=201, media_type=SDP_TYPE)
    response.headers["Location"] = location
    response.headers["ETag"] = f'"{etag}"'
    for link in ice_link_headers(settings, principal):
        response.headers.append("Link", link)
    return response


def options_response(settings: Settings, principal: Principal | None) -> Response:
    """WHIP/WHEP OPTIONS: what the endpoint accepts; ICE servers only with a valid token."""
    response = Response(status_code=204)
    response.headers["Accept-Post"] = SDP_TYPE
    response.headers["Allow"] = "OPTIONS, POST"
    for link in ice_link_headers(settings, principal):
        response.headers.append("Link", link)
    return response


def negotiation_failed(exc: Exception) -> HTTPException:
    """400 for an offer we cannot answer; 503 when the ICE port range has no port left (try later)."""
    if isinstance(exc, PortsExhausted):
        return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"no media port free: {exc}",
                             headers={"Retry-After": str(PORTS_RETRY_AFTER)})
    return HTTPException(status.HTTP_400_BAD_REQUEST, f"cannot negotiate this offer: {exc}")


async def options_for(
    db: AsyncSession, conference_id: str, settings: Settings, principal: Principal | None, *roles: str
) -> Response:
    """OPTIONS of a WHIP/WHEP endpoint: a token must fit (``roles``) before it is given ICE servers."""
    if principal is not None:
        await conference_for(db, conference_id, principal, *roles)
    return options_response(settings, principal)


async def open_for_session(db: AsyncSession, conference_id: str, principal: Principal, *roles: str) -> None:
    """Before negotiating: the conference exists, the token fits, it has not ended; then the pooled
    database connection is given back, since negotiation needs none and can take seconds."""
    conference = await conference_for(db, conference_id, principal, *roles)
    if conference.status == "ended":
        raise HTTPException(409, "the conference has ended (an organiser can reopen it by changing its status)")
    await release(db)


def no_trickle() -> Response:
    """PATCH of a session URL: the answer carries every candidate (aiortc gathers before answering),
    so there is no trickle ICE and no ICE restart."""
    return Response(status_code=405, headers={"Allow": "DELETE"})


async def _stop_session(
    sessions: Mapping[str, Any], conference_id: str, session_id: str, principal: Principal, kind: str
) -> Response:
    """DELETE of a session URL: only the token that opened it (or the admin) may end it."""
    session: _Session | None = sessions.get(session_id)
    if session is None or session.conference_id != conference_id:
        raise HTTPException(404, f"unknown {kind} session")
    if not principal.is_admin and getattr(session, "owner", None) != principal.token_id:
        raise HTTPException(403, "not your session")
    await session.close()
    return Response(status_code=200)


def add_session_routes(
    router: APIRouter, kind: str, roles: tuple[str, ...], sessions_of: Callable[[Any], Mapping[str, Any]]
) -> None:
    """The routes WHIP and WHEP share besides their POST: OPTIONS of ``/{kind}/{conference_id}``
    (for tokens of ``roles``), PATCH and DELETE of the session URL under it. ``kind`` is WHIP or
    WHEP; ``sessions_of(media)`` gives that kind's open sessions by id."""
    name = kind.lower()
    path = f"/{name}/{{conference_id}}/{{session_id}}"

    async def options(
        conference_id: str, db: DbDep, settings: SettingsDep, principal: OptionalPrincipalDep
    ) -> Response:
        """What the endpoint accepts; with a token allowed to POST here, also the ICE servers to use."""
        return await options_for(db, conference_id, settings, principal, *roles)

    async def patch(conference_id: str, session_id: str) -> Response:
        return no_trickle()

    async def stop(conference_id: str, session_id: str, media: MediaDep, principal: PrincipalDep) -> Response:
        return await _stop_session(sessions_of(media), conference_id, session_id, principal, kind)

    router.add_api_route(f"/{name}/{{conference_id}}", options, methods=["OPTIONS"], name=f"{name}_options")
    router.add_api_route(path, patch, methods=["PATCH"], name=f"{name}_patch")
    router.add_api_route(path, stop, methods=["DELETE"], status_code=200, name=f"{name}_stop")
