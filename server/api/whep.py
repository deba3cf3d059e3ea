"""WHEP playback: connection points and viewers subscribe; allowed before the speaker is live."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from server.api import signalling
from server.deps import DbDep, MediaDep, PrincipalDep, PublicUrlDep, SettingsDep, WhepPlacesDep

router = APIRouter(tags=["whep"])

SUBSCRIBER_ROLES = ("point", "viewer", "member", "organiser", "speaker")


@router.post("/whep/{conference_id}", status_code=201, responses=signalling.SDP_ANSWER)
async def whep_subscribe(
    conference_id: str,
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    media: MediaDep,
    whep_places: WhepPlacesDep,
    principal: PrincipalDep,
    base: PublicUrlDep,
) -> Response:
    """Body: SDP offer (recvonly audio/video). Requires a point, viewer or member token."""
    await signalling.open_for_session(db, conference_id, principal, *SUBSCRIBER_ROLES)
    # A place of the token's and the conference's, held while negotiating: 429 when either is full.
    with whep_places.hold(media, principal, conference_id):
        offer = await signalling.read_offer(request, "recv", settings.max_sdp_bytes)
        try:
            consumer = await media.subscribe(
                conference_id,
                offer,
                role=principal.role,
                name=principal.name,
                owner=principal.token_id,
                subject_id=principal.subject_id,
            )
        except Exception as exc:
            raise signalling.negotiation_failed(exc)
    return signalling.session_response(
        settings, f"{base}/whep/{conference_id}/{consumer.id}", consumer.answer_sdp, consumer.id, principal
    )


signalling.add_session_routes(router, "WHEP", SUBSCRIBER_ROLES, lambda media: media.consumers)
