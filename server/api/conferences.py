"""Conferences and access tokens (admin/organiser API)."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from media.engine import MediaEngine
from server.db.models import AccessToken, utcnow
from server.deps import (
    AdminDep, DbDep, MediaDep, PrincipalDep, PublicUrlDep, SettingsDep, TokenWatchDep, authorize,
)
from server.domain import conferences as domain
from server.domain import tokens
from server.domain.conferences import as_utc
from server.domain.tokens import ROLES, Lifetimes, issue_token

router = APIRouter(prefix="/api/v1/conferences", tags=["conferences"])


class ConferenceIn(BaseModel):
    title: str = Field(min_length=1, max_length=500)
    description: str = Field(default="", max_length=20_000)
    scheduled_start: dt.datetime | None = None
    scheduled_end: dt.datetime | None = None


class ScheduleOut(BaseModel):
    """A conference as stored: what a schedule change returns and broadcasts."""

    id: str
    title: str
    description: str
    scheduled_start: dt.datetime | None
    scheduled_end: dt.datetime | None
    status: str


class ConferenceOut(ScheduleOut):
    """Also whether the speaker is live and how many are watching (from the media plane)."""

    live: bool = False
    consumers: int = 0


class TokenIn(BaseModel):
    role: str = Field(max_length=16, description="one of: " + ", ".join(ROLES))
    name: str = Field(default="", max_length=200)
    subject_id: str | None = Field(default=None, max_length=32)
    expires_at: dt.datetime | None = Field(
        default=None, description="when the token stops working (UTC if no offset); default: the role's lifetime"
    )


class TokenOut(BaseModel):
    id: str
    role: str
    name: str
    token: str
    expires_at: dt.datetime | None
    links: dict[str, str]


class TokenInfo(BaseModel):
    """A token as organisers see it: never its secret (that is shown once, at creation)."""

    id: str
    conference_id: str
    role: str
    name: str
    subject_id: str | None
    created_at: dt.datetime
    expires_at: dt.datetime | None = Field(description="null: never expires")
    expired: bool
    revoked: bool
    revoked_at: dt.datetime | None


def _out(engine: MediaEngine, conf) -> ConferenceOut:  # type: ignore[no-untyped-def]
    return ConferenceOut(
        id=conf.id,
        title=conf.title,
        description=conf.description,
        scheduled_start=conf.scheduled_start,
        scheduled_end=conf.scheduled_end,
        status=conf.status,
        live=engine.is_live(conf.id),
        consumers=engine.consumer_count(conf.id),
    )


async def load_conference(db: AsyncSession, conference_id: str):  # type: ignore[no-untyped-def]
    try:
        return await domain.get_conference(db, conference_id)
    except domain.ConferenceNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown conference '{conference_id}'")


@router.post("", status_code=201, response_model=ConferenceOut)
async def create_conference(
    body: ConferenceIn,
    db: DbDep,
    media: MediaDep,
    _: AdminDep,
) -> ConferenceOut:
    conf = await domain.create_conference(
        db, body.title, body.description, body.scheduled_start, body.scheduled_end
    )
    return _out(media, conf)


@router.get("", response_model=list[ConferenceOut])
async def list_conferences(
    db: DbDep,
    media: MediaDep,
    _: AdminDep,
) -> list[ConferenceOut]:
    return [_out(media, c) for c in await domain.list_conferences(db)]


@router.get("/{conference_id}", response_model=ConferenceOut)
async def get_conference(
    conference_id: str,
    db: DbDep,
    media: MediaDep,
    principal: PrincipalDep,
) -> ConferenceOut:
    conf = await load_conference(db, conference_id)
    authorize(principal, conference_id, *ROLES)
    return _out(media, conf)


def join_links(base: str, conference_id: str, role: str, secret: str) -> dict[str, str]:
    page = {
        "speaker": "speaker.html",
        "point": "point.html",
        "viewer": "viewer.html",
        "member": "viewer.html",
        "organiser": "dashboard.html",
        "grader": "grading.html",
        "supervisor": "supervision.html",
    }[role]
    return {"page": f"{base}/{page}#conference={conference_id}&token={secret}"}


@router.post("/{conference_id}/tokens", status_code=201, response_model=TokenOut)
async def create_token(
    conference_id: str,
    body: TokenIn,
    db: DbDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    base: PublicUrlDep,
) -> TokenOut:
    await load_conference(db, conference_id)
    authorize(principal, conference_id, "organiser")
    if body.role not in ROLES:
        raise HTTPException(422, f"role must be one of {', '.join(ROLES)}")
    if body.role == "organiser" and not principal.is_admin:
        raise HTTPException(403, "only the admin may create organiser tokens")
    expires_at = as_utc(body.expires_at)
    if expires_at is not None and expires_at <= utcnow():
        raise HTTPException(422, "expires_at must be in the future")
    row, secret = await issue_token(db, conference_id, body.role, body.name, body.subject_id, expires_at)
    return TokenOut(
        id=row.id,
        role=row.role,
        name=row.name,
        token=secret,
        expires_at=tokens.expiry(row.role, row.created_at, row.expires_at, settings.token_lifetime_days),
        links=join_links(base, conference_id, body.role, secret),
    )


def _info(lifetimes: Lifetimes, row: AccessToken) -> TokenInfo:
    end = tokens.expiry(row.role, row.created_at, row.expires_at, lifetimes)
    return TokenInfo(
        id=row.id,
        conference_id=row.conference_id,
        role=row.role,
        name=row.name,
        subject_id=row.subject_id,
        created_at=as_utc(row.created_at),  # type: ignore[arg-type]
        expires_at=end,
        expired=end is not None and end <= utcnow(),
        revoked=bool(row.revoked),
        revoked_at=as_utc(row.revoked_at),
    )


@router.get("/{conference_id}/tokens", response_model=list[TokenInfo])
async def list_tokens(
    conference_id: str,
    db: DbDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> list[TokenInfo]:
    """Every token of the conference, oldest first, with its expiry and revocation (no secrets)."""
    await load_conference(db, conference_id)
    authorize(principal, conference_id, "organiser")
    return [_info(settings.token_lifetime_days, row) for row in await tokens.list_tokens(db, conference_id)]


@router.post("/{conference_id}/tokens/{token_id}/revoke", response_model=TokenInfo)
async def revoke_token(
    conference_id: str,
    token_id: str,
    db: DbDep,
    settings: SettingsDep,
    token_watch: TokenWatchDep,
    principal: PrincipalDep,
) -> TokenInfo:
    """Revoke a token: it is refused at once, and its open WHIP/WHEP sessions and WebSockets are
    closed within ``token_check_seconds``. Revoking again changes nothing."""
    await load_conference(db, conference_id)
    authorize(principal, conference_id, "organiser")
    try:
        row = await tokens.get_token(db, conference_id, token_id)
    except tokens.TokenNotFound:
        raise HTTPException(404, f"unknown token '{token_id}' in this conference")
    if row.role == "organiser" and not principal.is_admin:
        raise HTTPException(403, "only the admin may revoke organiser tokens")
    info = _info(settings.token_lifetime_days, await tokens.revoke_token(db, row))
    await db.commit()  # before the sweep looks, so it sees the revocation
    token_watch.poke()
    return info
