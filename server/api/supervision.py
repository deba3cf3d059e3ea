"""Supervision: teams and their tokens, check-in visits at points, and remote supervision
(opt-in room snapshots from point pages, the wall of the latest per point)."""

from __future__ import annotations

import datetime as dt
import json

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field

from server.api.conferences import join_links
from server.api.guards import ANY_ROLE, conference_for
from server.db.models import SupervisionVisit
from server.deps import DbDep, PrincipalDep, SettingsDep
from server.domain import supervision as domain
from server.domain import supervision_snapshots as snapshots
from server.domain.grading_scope import PointTree
from server.domain.points import list_points
from server.domain.tokens import issue_token
from server.limits.body_size import allow_body

router = APIRouter(prefix="/api/v1/conferences/{conference_id}/supervision", tags=["supervision"])

WATCHERS = ("organiser", "supervisor")


class TeamIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    point_ids: list[str] = Field(default_factory=list, max_length=500,
                                 description="districts (or points) whose subtrees it visits; empty: all")


class TeamOut(BaseModel):
    id: str
    name: str
    point_ids: list[str]
    token: str
    links: dict[str, str]


class VisitIn(BaseModel):
    point_id: str = Field(min_length=1, max_length=32)
    rating: int = Field(ge=1, le=5, description="how the session was run, 1 (poorly) to 5 (very well)")
    note: str = Field(default="", max_length=domain.MAX_NOTE)


class VisitOut(BaseModel):
    id: str
    point_id: str
    point: str
    district: str
    supervisor: str
    rating: int
    note: str
    visited_at: dt.datetime


class SnapshotSettingIn(BaseModel):
    enabled: bool


def _visit_out(v: SupervisionVisit, tree: PointTree) -> VisitOut:
    district = tree.ancestor_at(v.point_id, "district")
    return VisitOut(id=v.id, point_id=v.point_id, point=tree.name(v.point_id),
                    district=district.name if district else "", supervisor=v.supervisor,
                    rating=v.rating, note=v.note, visited_at=v.visited_at)


@router.post("/teams", status_code=201, response_model=TeamOut)
async def create_team(conference_id: str, body: TeamIn, db: DbDep, settings: SettingsDep,
                      principal: PrincipalDep) -> TeamOut:
    """A supervision team scoped to ``point_ids`` (their subtrees) and its supervisors' token."""
    await conference_for(db, conference_id, principal, "organiser")
    try:
        team = await domain.create_team(db, conference_id, body.name, body.point_ids,
                                        PointTree(await list_points(db, conference_id)))
    except domain.SupervisionError as exc:
        raise HTTPException(exc.status, exc.message)
    row, secret = await issue_token(db, conference_id, "supervisor", team.name, team.id)
    return TeamOut(id=team.id, name=team.name, point_ids=json.loads(team.point_ids), token=secret,
                   links=join_links(settings.base_url, conference_id, "supervisor", secret))


@router.get("/points")
async def points_to_visit(conference_id: str, db: DbDep, principal: PrincipalDep) -> list[dict]:
    """The points a supervisor may check in at (the team's districts), with their district."""
    await conference_for(db, conference_id, principal, *WATCHERS)
    tree = PointTree(await list_points(db, conference_id))
    scope = await domain.scope_of(db, principal, tree)
    return [
        {"id": p.id, "name": p.name, "level": p.level,
         "district": (d.name if (d := tree.ancestor_at(p.id, "district")) else "")}
        for p in tree.points.values() if p.id in scope
    ]


@router.post("/visits", status_code=201, response_model=VisitOut)
async def check_in(conference_id: str, body: VisitIn, db: DbDep, principal: PrincipalDep) -> VisitOut:
    """Check in at a point during a session: a note and a rating (a team: only inside its districts, 403)."""
    await conference_for(db, conference_id, principal, *WATCHERS)
    tree = PointTree(await list_points(db, conference_id))
    if body.point_id not in tree.points:
        raise HTTPException(404, f"unknown point '{body.point_id}'")
    try:
        visit = await domain.check_in(db, conference_id, principal, body.point_id, body.rating, body.note,
                                      await domain.scope_of(db, principal, tree))
    except domain.SupervisionError as exc:
        raise HTTPException(exc.status, exc.message)
    return _visit_out(visit, tree)


@router.get("/visits", response_model=list[VisitOut])
async def visits(conference_id: str, db: DbDep, principal: PrincipalDep) -> list[VisitOut]:
    """Every visit, oldest first (a team sees those to its own districts)."""
    await conference_for(db, conference_id, principal, *WATCHERS)
    tree = PointTree(await list_points(db, conference_id))
    scope = None if principal.role != "supervisor" else await domain.scope_of(db, principal, tree)
    return [_visit_out(v, tree) for v in await domain.list_visits(db, conference_id, scope)]


@router.get("/snapshots/settings")
async def snapshot_settings(conference_id: str, db: DbDep, settings: SettingsDep, principal: PrincipalDep) -> dict:
    """Whether the conference opted in to remote supervision, and how often a point page sends."""
    await conference_for(db, conference_id, principal, *ANY_ROLE)
    return {"enabled": await snapshots.enabled(db, conference_id),
            "interval_seconds": settings.snapshot_interval_seconds, "max_bytes": settings.snapshot_max_bytes}


@router.put("/snapshots/settings")
async def put_snapshot_settings(conference_id: str, body: SnapshotSettingIn, db: DbDep, settings: SettingsDep,
                                principal: PrincipalDep) -> dict:
    await conference_for(db, conference_id, principal, "organiser")
    await snapshots.set_enabled(db, conference_id, body.enabled)
    return {"enabled": body.enabled, "interval_seconds": settings.snapshot_interval_seconds,
            "max_bytes": settings.snapshot_max_bytes}


@router.post(
    "/snapshots", status_code=201,
    openapi_extra={"requestBody": {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}}},
    responses={409: {"description": "the conference has not opted in"}, 413: {"description": "too large"},
               415: {"description": "not a JPEG"}},
)
async def send_snapshot(conference_id: str, request: Request, db: DbDep, settings: SettingsDep,
                        principal: PrincipalDep) -> dict:
    """A point page's room snapshot (body: the JPEG, ``Content-Type: image/jpeg``), only while the
    conference has opted in (409 otherwise)."""
    await conference_for(db, conference_id, principal, "point")
    if principal.subject_id is None:
        raise HTTPException(400, "this point token names no point")
    if not await snapshots.enabled(db, conference_id):
        raise HTTPException(409, "this conference does not use remote supervision")
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "image/jpeg":
        raise HTTPException(415, "send the snapshot as image/jpeg")
    allow_body(request, settings.snapshot_max_bytes)
    data = await request.body()
    try:
        snapshots.check_jpeg(data, settings.snapshot_max_bytes)
        row = await snapshots.store(db, settings.data_dir, conference_id, principal.subject_id, data)
    except snapshots.SnapshotError as exc:
        raise HTTPException(exc.status, exc.message)
    return {"id": row.id, "taken_at": row.taken_at.isoformat(), "size": row.size}


@router.get("/snapshots")
async def wall(conference_id: str, db: DbDep, principal: PrincipalDep) -> dict:
    """The wall: the latest snapshot of every point in the caller's scope, grouped by district."""
    await conference_for(db, conference_id, principal, *WATCHERS)
    tree = PointTree(await list_points(db, conference_id))
    scope = await domain.scope_of(db, principal, tree)
    latest = await snapshots.latest_per_point(db, conference_id)
    groups: dict[str, list[dict]] = {}
    for p in sorted(tree.points.values(), key=lambda p: p.name):
        if p.id not in scope or p.level == "province" and p.id not in latest:
            continue
        shot = latest.get(p.id)
        district = tree.ancestor_at(p.id, "district")
        groups.setdefault(district.name if district else "", []).append({
            "point_id": p.id, "point": p.name, "level": p.level,
            "snapshot": None if shot is None else {
                "id": shot.id, "taken_at": shot.taken_at.isoformat(), "size": shot.size,
                "url": f"/api/v1/conferences/{conference_id}/supervision/snapshots/{shot.id}",
            },
        })
    return {"enabled": await snapshots.enabled(db, conference_id),
            "districts": [{"district": k, "points": v} for k, v in sorted(groups.items())]}


@router.get("/snapshots/{snapshot_id}", response_class=Response)
async def snapshot_image(conference_id: str, snapshot_id: str, db: DbDep, settings: SettingsDep,
                         principal: PrincipalDep) -> Response:
    await conference_for(db, conference_id, principal, *WATCHERS)
    row = await snapshots.get(db, conference_id, snapshot_id)
    tree = PointTree(await list_points(db, conference_id))
    if row is None or row.point_id not in await domain.scope_of(db, principal, tree):
        raise HTTPException(404, f"unknown snapshot '{snapshot_id}'")
    path = snapshots.snapshot_path(settings.data_dir, row)
    if not path.is_file():
        raise HTTPException(404, f"unknown snapshot '{snapshot_id}'")
    return Response(path.read_bytes(), media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"})
