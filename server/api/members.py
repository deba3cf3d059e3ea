"""Members: CRUD, CSV import and personal join links for watching at home (organiser API)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, TypeVar

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from server.api.conferences import join_links
from server.api.downloads import csv_download
from server.api.guards import conference_for, csv_import, or_404, pick_subjects, self_or_organiser
from server.api.paging import MAX_OFFSET
from server.db.models import Member
from server.deps import DbDep, PrincipalDep, PublicUrlDep, SettingsDep
from server.domain import members as domain
from server.domain.csvio import write_csv
from server.domain.subject_tokens import issue_subject_tokens
from server.domain.points import list_points

router = APIRouter(prefix="/api/v1/conferences/{conference_id}/members", tags=["members"])

T = TypeVar("T")

MAX_LINK_IDS = 20_000  # members named in one links request (about 0.7 MB of JSON; none = every member)


class MemberIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    unit: str = Field(default="", max_length=200)
    point_id: str | None = Field(
        default=None, max_length=32, description="connection point; none = watches individually"
    )


class MemberPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    unit: str | None = Field(default=None, max_length=200)
    point_id: str | None = Field(default=None, max_length=32)


class MemberOut(BaseModel):
    id: str
    name: str
    unit: str
    point_id: str | None


class MemberPage(BaseModel):
    total: int
    offset: int
    members: list[MemberOut]


class MemberLinksIn(BaseModel):
    member_ids: list[Annotated[str, Field(max_length=32)]] | None = Field(
        default=None, max_length=MAX_LINK_IDS, description="default: every member"
    )
    revoke_existing: bool = True


class MemberLink(BaseModel):
    member_id: str
    name: str
    token_id: str
    token: str
    link: str


def member_out(m: Member) -> MemberOut:
    return MemberOut(id=m.id, name=m.name, unit=m.unit, point_id=m.point_id)


def _member(work: Awaitable[T], member_id: str) -> Awaitable[T]:
    """``work`` on one member, 404 when the conference has no such member."""
    return or_404(work, domain.MemberNotFound, f"unknown member '{member_id}'")


@router.get("", response_model=MemberPage)
async def list_members(
    conference_id: str,
    db: DbDep,
    principal: PrincipalDep,
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    limit: int = Query(1000, ge=1, le=10000),
) -> MemberPage:
    await conference_for(db, conference_id, principal, "organiser")
    return MemberPage(
        total=await domain.count_members(db, conference_id),
        offset=offset,
        members=[member_out(m) for m in await domain.list_members(db, conference_id, offset, limit)],
    )


@router.post("", status_code=201, response_model=MemberOut)
async def create_member(
    conference_id: str,
    body: MemberIn,
    db: DbDep,
    principal: PrincipalDep,
) -> MemberOut:
    await conference_for(db, conference_id, principal, "organiser")
    try:
        return member_out(await domain.create_member(db, conference_id, body.name, body.unit, body.point_id))
    except domain.MemberError as exc:
        raise HTTPException(422, str(exc))


@router.post(
    "/import",
    openapi_extra={
        "requestBody": {
            "description": "CSV with columns name[, unit, point (by name)]",
            "content": {"text/csv": {"schema": {"type": "string"}}, "multipart/form-data": {}},
        }
    },
)
async def import_members(
    conference_id: str,
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> dict:
    """Add members from CSV; a file with any bad row imports nothing (400 lists the rows)."""
    created = await csv_import(
        request, db, settings, conference_id, principal, lambda data: domain.import_csv(db, conference_id, data)
    )
    return {"created": len(created)}


@router.post("/tokens", response_model=list[MemberLink])
async def issue_member_links(
    conference_id: str,
    db: DbDep,
    base: PublicUrlDep,
    principal: PrincipalDep,
    body: MemberLinksIn | None = None,
    format: str = Query("json", pattern="^(json|csv)$", description="csv: name, unit, point, link, token"),
) -> list[MemberLink] | Response:
    """Personal links (viewer page, WebRTC or HLS) for members; secrets are shown only here."""
    await conference_for(db, conference_id, principal, "organiser")
    body = body or MemberLinksIn()
    members = pick_subjects(await domain.list_members(db, conference_id), body.member_ids, "member", shown=20)
    issued = await issue_subject_tokens(
        db, conference_id, "member", [(m.id, m.name) for m in members], body.revoke_existing
    )
    links = [
        MemberLink(
            member_id=t.subject_id,
            name=t.name,
            token_id=t.token_id,
            token=t.secret,
            link=join_links(base, conference_id, "member", t.secret)["page"],
        )
        for t in issued
    ]
    if format == "csv":
        point_names = {p.id: p.name for p in await list_points(db, conference_id)}
        by_id = {m.id: m for m in members}
        rows = []
        for link in links:
            m = by_id[link.member_id]
            rows.append([m.name, m.unit, point_names.get(m.point_id or "", ""), link.link, link.token])
        return csv_download(write_csv(["name", "unit", "point", "link", "token"], rows), "member-links.csv")
    return links


@router.get("/{member_id}", response_model=MemberOut)
async def get_member(
    conference_id: str,
    member_id: str,
    db: DbDep,
    principal: PrincipalDep,
) -> MemberOut:
    """Organisers see any member; a member sees only themself."""
    await self_or_organiser(db, conference_id, principal, "member", member_id)
    return member_out(await _member(domain.get_member(db, conference_id, member_id), member_id))


@router.patch("/{member_id}", response_model=MemberOut)
async def update_member(
    conference_id: str,
    member_id: str,
    body: MemberPatch,
    db: DbDep,
    principal: PrincipalDep,
) -> MemberOut:
    await conference_for(db, conference_id, principal, "organiser")
    try:
        return member_out(
            await domain.update_member(db, conference_id, member_id, body.model_dump(exclude_unset=True))
        )
    except domain.MemberNotFound:
        raise HTTPException(404, f"unknown member '{member_id}'")
    except domain.MemberError as exc:
        raise HTTPException(422, str(exc))


@router.delete("/{member_id}", status_code=204)
async def delete_member(
    conference_id: str,
    member_id: str,
    db: DbDep,
    principal: PrincipalDep,
) -> None:
    await conference_for(db, conference_id, principal, "organiser")
    await _member(domain.delete_member(db, conference_id, member_id), member_id)


@router.post("/{member_id}/token", response_model=MemberLink, status_code=201)
async def issue_member_link(
    conference_id: str,
    member_id: str,
    db: DbDep,
    base: PublicUrlDep,
    principal: PrincipalDep,
    revoke_existing: bool = Query(True),
) -> MemberLink:
    await conference_for(db, conference_id, principal, "organiser")
    member = await _member(domain.get_member(db, conference_id, member_id), member_id)
    [t] = await issue_subject_tokens(db, conference_id, "member", [(member.id, member.name)], revoke_existing)
    link = join_links(base, conference_id, "member", t.secret)["page"]
    return MemberLink(member_id=member.id, name=member.name, token_id=t.token_id, token=t.secret, link=link)
