"""WHIP ingest (RFC 9725): the speaker's browser or OBS publishes one conference's main stream."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.conferences import load_conference
from server.api.signalling import negotiation_failed, options_response, read_offer, session_response
from server.deps import DB, authorize, get_principal, optional_principal, release
from server.domain.tokens import Principal

router = APIRouter(tags=["whip"])


@router.options("/whip/{conference_id}")
async def whip_options(
    conference_id: str,
    request: Request,
    db: AsyncSession = DB,
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """What the endpoint accepts; with a token allowed to POST here, also the ICE servers to use."""
    if principal is not None:
        await load_conference(db, conference_id)
        authorize(principal, conference_id, "speaker")
    return options_response(request, principal)


@router.post(
    "/whip/{conference_id}",
    status_code=201,
    responses={201: {"content": {"application/sdp": {}}, "description": "SDP answer"}},
)
async def whip_publish(
    conference_id: str,
    request: Request,
    db: AsyncSession = DB,
    principal: Principal = Depends(get_principal),
) -> Response:
    """Body: SDP offer (application/sdp). Requires a speaker token of this conference."""
    conference = await load_conference(db, conference_id)
    authorize(principal, conference_id, "speaker")
    if conference.status == "ended":
        raise HTTPException(409, "the conference has ended (an organiser can reopen it by changing its status)")
    await release(db)  # negotiation needs no database: do not hold a pooled connection through it
    offer = await read_offer(request, "send")
    try:
        producer = await request.app.state.media.publish(conference_id, offer)
    except Exception as exc:
        raise negotiation_failed(exc)
    producer.owner = principal.token_id
    return session_response(
        request, f"/whip/{conference_id}/{producer.id}", producer.answer_sdp, producer.id, principal
    )


@router.patch("/whip/{conference_id}/{session_id}")
async def whip_patch(conference_id: str, session_id: str) -> Response:
    # The answer carries every candidate (aiortc gathers before answering): no trickle, no ICE restart.
    return Response(status_code=405, headers={"Allow": "DELETE"})


@router.delete("/whip/{conference_id}/{session_id}", status_code=200)
async def whip_stop(
    conference_id: str,
    session_id: str,
    request: Request,
    principal: Principal = Depends(get_principal),
) -> Response:
    media = request.app.state.media
    producer = media.producers.get(session_id)
    if producer is None or producer.conference_id != conference_id:
        raise HTTPException(404, "unknown WHIP session")
    if not principal.is_admin and getattr(producer, "owner", None) != principal.token_id:
        raise HTTPException(403, "not your session")
    await producer.close()
    return Response(status_code=200)
