"""Connection points: CRUD, CSV import and operator join links (organiser API)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, TypeVar

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from server.api.conferences import join_links
from server.api.downloads import csv_download
from server.api.guards import conference_for, csv_import, or_404, pick_subjects, self_or_organiser
from server.db.models import ConnectionPoint
from server.deps import DbDep, PrincipalDep, PublicUrlDep, SettingsDep
from server.domain import points as domain
from server.domain.csvio import write_csv
from server.domain.subject_tokens import IssuedToken, issue_subject_tokens

router = APIRouter(prefix="/api/v1/conferences/{conference_id}/points", tags=["connection points"])

T = TypeVar("T")


class PointIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    level: str = Field(max_length=16, description="province, district or commune")
    parent_id: str | None = Field(default=None, max_length=32)
    operator_name: str = Field(default="", max_length=200)
    summoned: int = Field(default=0, ge=0, le=domain.MAX_SUMMONED)


class PointPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    level: str | None = Field(default=None, max_length=16)
    parent_id: str | None = Field(default=None, max_length=32)
    operator_name: str | None = Field(default=None, max_length=200)
    summoned: int | None = Field(default=None, ge=0, le=domain.MAX_SUMMONED)


class PointOut(BaseModel):
    id: str
    name: str
    level: str
    parent_id: str | None
    operator_name: str
    summoned: int


class ImportOut(BaseModel):
    created: int
    updated: int
    points: list[PointOut]


class LinksIn(BaseModel):
    point_ids: list[Annotated[str, Field(max_length=32)]] | None = Field(
        default=None, max_length=domain.MAX_IMPORT_ROWS, description="default: every point"
    )
    revoke_existing: bool = Field(
        default=True, description="revoke the points' previous operator tokens (old links stop working)"
    )


class PointLink(BaseModel):
    point_id: str
    name: str
    level: str
    token_id: str
    token: str
    link: str


def point_out(p: ConnectionPoint) -> PointOut:
    return PointOut(
        id=p.id,
        name=p.name,
        level=p.level,
        parent_id=p.parent_id,
        operator_name=p.operator_name,
        summoned=p.summoned,
    )


def _point(work: Awaitable[T], point_id: str) -> Awaitable[T]:
    """``work`` on one point, 404 when the conference has no such point."""
    return or_404(work, domain.PointNotFound, f"unknown point '{point_id}'")


@router.get("", response_model=list[PointOut])
async def list_points(
    conference_id: str,
    db: DbDep,
    principal: PrincipalDep,
) -> list[PointOut]:
    """All points, provinces first, then districts, then communes. Organisers, and the speaker (who
    chairs: it may invite a point that did not ask for the floor)."""
    await conference_for(db, conference_id, principal, "organiser", "speaker")
    return [point_out(p) for p in await domain.list_points(db, conference_id)]


@router.post("", status_code=201, response_model=PointOut)
async def create_point(
    conference_id: str,
    body: PointIn,
    db: DbDep,
    principal: PrincipalDep,
) -> PointOut:
    await conference_for(db, conference_id, principal, "organiser")
    try:
        point = await domain.create_point(
            db, conference_id, body.name, body.level, body.parent_id, body.operator_name, body.summoned
        )
    except domain.PointError as exc:
        raise HTTPException(422, str(exc))
    except domain.PointNotFound:
        raise HTTPException(422, f"unknown parent point '{body.parent_id}'")
    return point_out(point)


@router.post(
    "/import",
    response_model=ImportOut,
    openapi_extra={
        "requestBody": {
            "description": "CSV with columns name, level, parent (by name), summoned[, operator]",
            "content": {"text/csv": {"schema": {"type": "string"}}, "multipart/form-data": {}},
        }
    },
)
async def import_points(
    conference_id: str,
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    update_existing: bool = Query(False, description="update points whose name already exists"),
) -> ImportOut:
    """Import points from CSV in one go; a file with any bad row imports nothing (400 lists the rows)."""
    result = await csv_import(
        request,
        db,
        settings,
        conference_id,
        principal,
        lambda data: domain.import_csv(db, conference_id, data, update_existing),
    )
    return ImportOut(
        created=len(result.created),
        updated=len(result.updated),
        points=[point_out(p) for p in [*result.created, *result.updated]],
    )


def _links(
    base: str, conference_id: str, points: list[ConnectionPoint], issued: list[IssuedToken]
) -> list[PointLink]:
    """Each issued token with its point and join link (under ``base``, the server's base URL)."""
    by_id = {p.id: p for p in points}
    return [
        PointLink(
            point_id=t.subject_id,
            name=t.name,
            level=by_id[t.subject_id].level,
            token_id=t.token_id,
            token=t.secret,
            link=join_links(base, conference_id, "point", t.secret)["page"],
        )
        for t in issued
    ]


@router.post("/tokens", response_model=list[PointLink])
async def issue_point_links(
    conference_id: str,
    db: DbDep,
    base: PublicUrlDep,
    principal: PrincipalDep,
    body: LinksIn | None = None,
    format: str = Query("json", pattern="^(json|csv)$", description="csv: name, level, parent, link, token"),
) -> list[PointLink] | Response:
    """Issue each point's operator token and join link (point.html). Secrets are shown only here."""
    await conference_for(db, conference_id, principal, "organiser")
    body = body or LinksIn()
    points = pick_subjects(await domain.list_points(db, conference_id), body.point_ids, "point")
    issued = await issue_subject_tokens(
        db, conference_id, "point", [(p.id, p.name) for p in points], body.revoke_existing
    )
    links = _links(base, conference_id, points, issued)
    if format == "csv":
        names = {p.id: p.name for p in await domain.list_points(db, conference_id)}
        parents = {p.id: names.get(p.parent_id or "", "") for p in points}
        rows = [[x.name, x.level, parents[x.point_id], x.link, x.token] for x in links]
        return csv_download(write_csv(["name", "level", "parent", "link", "token"], rows), "point-links.csv")
    return links


@router.get("/{point_id}", response_model=PointOut)
async def get_point(
    conference_id: str,
    point_id: str,
    db: DbDep,
    principal: PrincipalDep,
) -> PointOut:
    """Organisers see any point; a point operator sees its own."""
    await self_or_organiser(db, conference_id, principal, "point", point_id)
    return point_out(await _point(domain.get_point(db, conference_id, point_id), point_id))


@router.patch("/{point_id}", response_model=PointOut)
async def update_point(
    conference_id: str,
    point_id: str,
    body: PointPatch,
    db: DbDep,
    principal: PrincipalDep,
) -> PointOut:
    await conference_for(db, conference_id, principal, "organiser")
    try:
        return point_out(
            await domain.update_point(db, conference_id, point_id, body.model_dump(exclude_unset=True))
        )
    except domain.PointNotFound as exc:
        raise HTTPException(404, f"unknown point '{exc.args[0]}'")
    except domain.PointError as exc:
        raise HTTPException(422, str(exc))


@router.delete("/{point_id}", status_code=204)
async def delete_point(
    conference_id: str,
    point_id: str,
    db: DbDep,
    principal: PrincipalDep,
) -> None:
    """Delete a point (and its headcounts); children stay, without a parent; sessions are kept."""
    await conference_for(db, conference_id, principal, "organiser")
    await _point(domain.delete_point(db, conference_id, point_id), point_id)


@router.post("/{point_id}/token", response_model=PointLink, status_code=201)
async def issue_point_link(
    conference_id: str,
    point_id: str,
    db: DbDep,
    base: PublicUrlDep,
    principal: PrincipalDep,
    revoke_existing: bool = Query(True),
) -> PointLink:
    """A new operator token and join link for one point (e.g. to replace a leaked link)."""
    await conference_for(db, conference_id, principal, "organiser")
    point = await _point(domain.get_point(db, conference_id, point_id), point_id)
    issued = await issue_subject_tokens(db, conference_id, "point", [(point.id, point.name)], revoke_existing)
    return _links(base, conference_id, [point], issued)[0]
