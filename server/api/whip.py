"""WHIP ingest (RFC 9725): the speaker's browser or OBS publishes one conference's main stream."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from server.api import signalling
from server.deps import DbDep, MediaDep, PrincipalDep, SettingsDep

router = APIRouter(tags=["whip"])


@router.post("/whip/{conference_id}", status_code=201, responses=signalling.SDP_ANSWER)
async def whip_publish(
    conference_id: str,
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    media: MediaDep,
    principal: PrincipalDep,
) -> Response:
    """Body: SDP offer (application/sdp). Requires a speaker token of this conference."""
    await signalling.open_for_session(db, conference_id, principal, "speaker")
    offer = await signalling.read_offer(request, "send", settings.max_sdp_bytes)
    try:
        producer = await media.publish(conference_id, offer)
    except Exception as exc:
        raise signalling.negotiation_failed(exc)
    producer.owner = principal.token_id
    return signalling.session_response(
        settings, f"/whip/{conference_id}/{producer.id}", producer.answer_sdp, producer.id, principal
    )


signalling.add_session_routes(router, "WHIP", ("speaker",), lambda media: media.producers)
