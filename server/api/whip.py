"""WHIP ingest (RFC 9725): the speaker's browser or OBS publishes one conference's main stream; a
connection point holding the floor publishes its camera and microphone beside it."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response

from server.api import signalling
from server.deps import DbDep, FloorDep, MediaDep, PrincipalDep, PublicUrlDep, SettingsDep
from server.domain.floor import FloorService
from server.domain.tokens import Principal

router = APIRouter(tags=["whip"])

NO_FLOOR = "the floor has not been granted to this point"


async def _floor_grant(floor: FloorService, conference_id: str, principal: Principal) -> str:
    """The holding a point publishes under; 403 when its point does not hold the floor."""
    grant = await floor.holding(conference_id, principal.subject_id)
    if grant is None:
        raise HTTPException(403, NO_FLOOR)
    return grant


@router.post("/whip/{conference_id}", status_code=201, responses=signalling.SDP_ANSWER)
async def whip_publish(
    conference_id: str,
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    media: MediaDep,
    floor: FloorDep,
    principal: PrincipalDep,
    base: PublicUrlDep,
) -> Response:
    """Body: SDP offer (application/sdp). A speaker token of this conference; or a point token
    while its point holds the floor (403 otherwise), which does not replace the speaker."""
    await signalling.open_for_session(db, conference_id, principal, "speaker", "point")
    grant = await _floor_grant(floor, conference_id, principal) if principal.role == "point" else None
    offer = await signalling.read_offer(request, "send", settings.max_sdp_bytes)
    try:
        if grant is None:
            producer = await media.publish(conference_id, offer)
        else:
            producer = await media.publish(conference_id, offer, role="point", subject_id=principal.subject_id)
    except Exception as exc:
        raise signalling.negotiation_failed(exc)
    producer.owner = principal.token_id
    if grant is not None and await floor.holding(conference_id, principal.subject_id) != grant:
        await producer.close()  # the floor ended while this stream was being set up
        raise HTTPException(403, NO_FLOOR)
    return signalling.session_response(
        settings, f"{base}/whip/{conference_id}/{producer.id}", producer.answer_sdp, producer.id, principal
    )


signalling.add_session_routes(router, "WHIP", ("speaker", "point"), lambda media: media.producers)
