"""Live link quality (organisers): every point's level, score and figures with the speaker's state,
a point's recent history, the alerts, and pinning a point's rendition.

Thin over :class:`server.domain.quality.QualityService`. The point page's two WebSocket messages,
``quality.report`` and ``rendition.pin``, are answered by :func:`quality_message` (used by
``server.api.events``).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from server.api.guards import conference_for, or_404
from server.deps import DbDep, PrincipalDep, QualityDep
from server.domain import quality_store
from server.domain.points import PointNotFound, get_point
from server.domain.quality import QualityRefused, QualityService, alert_view
from server.domain.tokens import Principal

router = APIRouter(prefix="/api/v1/conferences/{conference_id}", tags=["quality"])

Rendition = Literal["full", "low", "audio"]
Level = Literal["good", "fair", "poor"]


class Figures(BaseModel):
    """The numbers behind a point's score (null: not measured)."""

    loss_percent: float | None = Field(default=None, description="receiver reports: fraction lost, worst kind")
    rtt_ms: float | None = None
    jitter_ms: float | None = None
    retransmit_percent: float | None = Field(default=None, description="video packets resent on NACKs, per sent")
    keyframe_requests: float | None = Field(default=None, description="keyframes the point asked for, per 10 s")
    bitrate_kbps: float | None = Field(default=None, description="what the relay sent it, audio and video")
    fps: float | None = Field(default=None, description="frames its page decoded per second")
    frames_dropped_percent: float | None = None
    freeze_percent: float | None = Field(default=None, description="share of the report's time frozen")
    freeze_seconds: float | None = Field(default=None, description="how long the picture has not moved now")
    fps_shortfall_percent: float | None = Field(default=None, description="how far below the speaker's frame rate")
    jitter_buffer_ms: float | None = None
    available_kbps: float | None = Field(default=None, description="the page's available incoming bitrate")


class PointQuality(BaseModel):
    point_id: str
    name: str
    level: str = Field(description="province, district or commune")
    parent_id: str | None = None
    status: Literal["watching", "connected", "offline"] = Field(
        description="watching: a WHEP session; connected: only its page's event channel; offline"
    )
    rendition: Rendition | None = Field(description="what it receives now; null when not watching")
    pinned: Rendition | None = Field(description="pinned by an operator; null: adaptation decides")
    score: Level | None = Field(description="null: nothing measured (not watching, or nobody publishing)")
    score_value: int | None = Field(description="0-100: good from 80, poor at 50 and below")
    previous: Level | None = Field(description="the score measured before the current one")
    reasons: list[str] = Field(description="the figures that kept the score below 80, worst first")
    figures: Figures
    sampled_at: str | None
    score_since: str | None = Field(description="since when the point's score is what it is")
    alerts: list[str] = Field(description="kinds of the point's open alerts")


class Recording(BaseModel):
    state: Literal["recording", "paused", "off"] = Field(description="paused: disk space low")
    id: str | None
    size_bytes: int | None
    duration_seconds: float | None


class SpeakerRendition(BaseModel):
    width: int | None
    height: int | None
    fps: float | None
    bitrate_kbps: float | None


class SpeakerState(BaseModel):
    live: bool
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    bitrate_kbps: float | None = Field(default=None, description="every track of the speaker's, as received")
    keyframe_interval_seconds: float | None = None
    loss_percent: float | None = Field(default=None, description="the speaker's link: packets missing on arrival")
    rtt_ms: float | None = None
    renditions: list[SpeakerRendition] = Field(description="each video track the speaker sends, largest first")
    low_rendition: Literal["publisher", "transcode", "none"] = Field(
        description="how the low rendition is made now: the program's publisher sends it (a second video track), "
        "the server transcodes the program, or not at all (nobody on it, and the publisher sends none)")
    recording: Recording


class QualityOut(BaseModel):
    v: int = 1
    generated_at: str
    interval_seconds: float
    speaker: SpeakerState
    points: list[PointQuality] = Field(description="every point of the conference, worst first")
    active_alerts: int


class Sample(BaseModel):
    at: str
    score: Level | None
    score_value: int | None
    rendition: Rendition | None
    loss_percent: float | None
    rtt_ms: float | None
    jitter_ms: float | None
    retransmit_percent: float | None
    bitrate_kbps: float | None
    fps: float | None
    freeze_seconds: float | None


class HistoryOut(BaseModel):
    point_id: str
    interval_seconds: float
    samples: list[Sample] = Field(description="the last ten minutes, oldest first (kept in memory)")


class Alert(BaseModel):
    id: str
    point_id: str | None
    point_name: str
    level: str
    kind: Literal["dropped", "frozen", "poor", "audio_only"]
    detail: str
    started_at: str
    ended_at: str | None
    active: bool


class PinIn(BaseModel):
    rendition: Rendition | None = Field(description="full, low, audio, or null to let adaptation decide")


class PinOut(BaseModel):
    point_id: str
    pinned: Rendition | None
    sessions: int = Field(description="WHEP sessions of the point pinned now (later ones follow the pin)")


async def _do(work: Any) -> Any:
    try:
        return await work
    except QualityRefused as exc:
        raise HTTPException(exc.status, exc.detail) from None


@router.get("/quality", response_model=QualityOut)
async def quality(conference_id: str, db: DbDep, service: QualityDep, principal: PrincipalDep) -> dict[str, Any]:
    """The speaker's stream and recording, then every point: level, status, rendition, score and
    the figures behind it, worst first."""
    await conference_for(db, conference_id, principal, "organiser")
    return await service.view(db, conference_id)


@router.get("/quality/points/{point_id}/history", response_model=HistoryOut)
async def point_history(
    conference_id: str, point_id: str, db: DbDep, service: QualityDep, principal: PrincipalDep
) -> dict[str, Any]:
    """A point's samples of the last ten minutes (one per sample interval): the dashboard's chart."""
    await conference_for(db, conference_id, principal, "organiser")
    await or_404(get_point(db, conference_id, point_id), PointNotFound, f"unknown point '{point_id}'")
    return {"point_id": point_id, "interval_seconds": service.interval,
            "samples": service.history(conference_id, point_id)}


@router.get("/quality/alerts", response_model=list[Alert])
async def alerts(
    conference_id: str,
    db: DbDep,
    principal: PrincipalDep,
    active: bool | None = Query(None, description="true: open alerts only; false: ended ones only"),
    limit: int = Query(200, ge=1, le=1000),
) -> list[dict[str, Any]]:
    """Points dropped, frozen over 5 s, poor for a minute, on audio only: newest first."""
    await conference_for(db, conference_id, principal, "organiser")
    return [alert_view(a) for a in await quality_store.alerts(db, conference_id, active, limit)]


@router.post("/points/{point_id}/rendition", response_model=PinOut)
async def pin_rendition(
    conference_id: str, point_id: str, body: PinIn, db: DbDep, service: QualityDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Pin what a point receives (full, low, audio only) or give it back to adaptation (null): its
    WHEP sessions now, and the ones it opens later. 404 for a point of another conference."""
    await conference_for(db, conference_id, principal, "organiser")
    return await _do(service.pin(db, conference_id, point_id, body.rendition))


# --- the point page's messages on the conference WebSocket -----------------------------------------

QUALITY_MESSAGES = ("quality.report", "rendition.pin")


async def quality_message(
    service: QualityService, conference_id: str, principal: Principal, message: dict[str, Any]
) -> dict[str, Any]:
    """Answer one ``quality.report`` (``quality.ack``: the rendition the relay sends, the pin) or
    ``rendition.pin`` (``rendition.pinned``); a refusal is an ``error`` with REST's status."""
    kind = message.get("type")
    try:
        if kind == "quality.report":
            return await service.report(conference_id, principal, message)
        return await service.pin_from_page(conference_id, principal, message)
    except QualityRefused as exc:
        return {"v": 1, "type": "error", "for": kind, "status": exc.status, "detail": exc.detail}
