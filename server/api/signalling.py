"""Shared HTTP plumbing of WHIP (RFC 9725) and WHEP: body limits, ICE ``Link`` headers, errors."""

from __future__ import annotations

from fastapi import HTTPException, Request, Response, status

from media.core.sdp_check import OfferError, check_offer
from server.domain import ice_servers
from server.domain.tokens import Principal
from server.settings import Settings

SDP_TYPE = "application/sdp"


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
    return HTTPException(status.HTTP_400_BAD_REQUEST, f"cannot negotiate this offer: {exc}")
