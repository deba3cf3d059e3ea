"""WHIP ingest (RFC 9725): the speaker's browser or OBS publishes one conference's main stream."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response

from server.api.conferences import load_conference
from server.api.signalling import negotiation_failed, options_response, read_offer, session_response
from server.deps import (
    DbDep,
    MediaDep,
    OptionalPrincipalDep,
    PrincipalDep,
    SettingsDep,
    authorize,
    release,
)

router = APIRouter(tags=["whip"])


@router.options("/whip/{conference_id}")
async def whip_options(
    conference_id: str,
    db: DbDep,
    settings: SettingsDep,
    principal: OptionalPrincipalDep,
) -> Response:
    """What the endpoint accepts; with a token allowed to POST here, also the ICE servers to use."""
    if principal is not None:
        await load_conference(db, conference_id)
        authorize(principal, conference_id, "speaker")
    return options_response(settings, principal)


@router.post(
    "/whip/{conference_id}",
    status_code=201,
    responses={201: {"content": {"application/sdp": {}}, "description": "SDP answer"}},
)
async def whip_publish(
    conference_id: str,
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    media: MediaDep,
    principal: PrincipalDep,
) -> Response:
    """Body: SDP offer (application/sdp). Requires a speaker token of this conference."""
    conference = await load_conference(db, conference_id)
    authorize(principal, conference_id, "speaker")
    if conference.status == "ended":
        raise HTTPException(409, "the conference has ended (an organiser can reopen it by changing its status)")
    await release(db)  # negotiation needs no database: do not hold a pooled connection through it
    offer = await read_offer(request, "send", settings.max_sdp_bytes)
    try:
        producer = await media.publish(conference_id, offer)
    except Exception as exc:
        raise negotiation_failed(exc)
    producer.owner = principal.token_id
    return session_response(
        settings, f"/whip/{conference_id}/{producer.id}", producer.answer_sdp, producer.id, principal
    )


@router.patch("/whip/{conference_id}/{session_id}")
async def whip_patch(conference_id: str, session_id: str) -> Response:
    # The answer carries every candidate (aiortc gathers before answering): no trickle, no ICE restart.
    return Response(status_code=405, headers={"Allow": "DELETE"})


@router.delete("/whip/{conference_id}/{session_id}", status_code=200)
async def whip_stop(
    conference_id: str,
    session_id: str,
    media: MediaDep,
    principal: PrincipalDep,
) -> Response:
    producer = media.producers.get(session_id)
    if producer is None or producer.conference_id != conference_id:
        raise HTTPException(404, "unknown WHIP session")
    if not principal.is_admin and getattr(producer, "owner", None) != principal.token_id:
        raise HTTPException(403, "not your session")
    await producer.close()
    return Response(status_code=200)
