"""Proposals of a conference's essays: grouped by field and district, searched, merged, marked
forwarded, exported as CSV and as a printable HTML report (one page per district)."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.downloads import csv_download
from server.api.guards import conference_for
from server.deps import DbDep, PrincipalDep, SettingsDep
from server.domain import proposals as domain
from server.domain.essays_rollup import load_rollup
from server.domain.grading_scope import PointTree
from server.domain.points import list_points
from server.domain.proposals_report import proposals_csv, report_html
from server.domain.supervision import list_visits
from server.domain.tokens import Principal

router = APIRouter(prefix="/api/v1/conferences/{conference_id}/proposals", tags=["proposals"])


class MergeIn(BaseModel):
    into: str = Field(min_length=1, max_length=32, description="the proposal kept")


class ForwardIn(BaseModel):
    forwarded: bool = True
    to: str = Field(default="", max_length=200, description="the body it was sent to")


async def _lines(db: AsyncSession, conference_id: str, principal: Principal, q: str = "", field: str | None = None,
                 district: str | None = None) -> list[domain.ProposalLine]:
    await conference_for(db, conference_id, principal, "organiser")
    tree = PointTree(await list_points(db, conference_id))
    return await domain.collect(db, conference_id, tree, q, field, district)


@router.get("")
async def list_proposals(
    conference_id: str,
    db: DbDep,
    principal: PrincipalDep,
    q: str = Query("", max_length=200, description="words to find (accents ignored)"),
    field: str | None = Query(None, max_length=40),
    district: str | None = Query(None, max_length=200),
) -> dict:
    """``proposals`` (duplicates merged away, each counting its ``duplicates``), ``by_field`` and
    ``by_district`` counts, and the ``fields``."""
    lines = await _lines(db, conference_id, principal, q, field, district)
    return {
        "proposals": [dataclasses.asdict(line) for line in lines],
        "total": sum(1 + line.duplicates for line in lines),
        "by_field": domain.groups(lines, "field"),
        "by_district": domain.groups(lines, "district"),
        "fields": domain.FIELDS,
    }


def _refused(exc: domain.ProposalError) -> HTTPException:
    return HTTPException(exc.status, exc.message)


@router.post("/{proposal_id}/merge")
async def merge(conference_id: str, proposal_id: str, body: MergeIn, db: DbDep, principal: PrincipalDep) -> dict:
    """Merge a duplicate into the proposal kept (``into``; if that was merged itself, into its own)."""
    await conference_for(db, conference_id, principal, "organiser")
    try:
        kept = await domain.merge(db, conference_id, proposal_id, body.into)
    except domain.ProposalNotFound as exc:
        raise HTTPException(404, f"unknown proposal '{exc.args[0]}'")
    except domain.ProposalError as exc:
        raise _refused(exc)
    return {"id": proposal_id, "merged_into": kept.id}


@router.post("/{proposal_id}/forward")
async def forward(conference_id: str, proposal_id: str, body: ForwardIn, db: DbDep, principal: PrincipalDep) -> dict:
    """Mark a proposal as forwarded to a competent body (or not, with ``forwarded`` false)."""
    await conference_for(db, conference_id, principal, "organiser")
    try:
        row = await domain.set_forwarded(db, conference_id, proposal_id, body.forwarded, body.to)
    except domain.ProposalNotFound:
        raise HTTPException(404, f"unknown proposal '{proposal_id}'")
    except domain.ProposalError as exc:
        raise _refused(exc)
    return {"id": row.id, "forwarded_at": row.forwarded_at.isoformat() if row.forwarded_at else None,
            "forwarded_to": row.forwarded_to}


@router.get("/export.csv", response_class=Response)
async def export_csv(conference_id: str, db: DbDep, principal: PrincipalDep) -> Response:
    """Every proposal (merged duplicates counted with the one kept): field, title, member, point, district."""
    return csv_download(proposals_csv(await _lines(db, conference_id, principal)), f"proposals-{conference_id}.csv")


@router.get("/report.html", response_class=HTMLResponse)
async def report(conference_id: str, db: DbDep, settings: SettingsDep, principal: PrincipalDep) -> HTMLResponse:
    """Printable report to send up: charts and the province tree, then a page per district with its
    figures, its proposals by field and the supervision visits to its points."""
    conference = await conference_for(db, conference_id, principal, "organiser")
    lines = await _lines(db, conference_id, principal)
    rollup, _, tree = await load_rollup(db, conference, settings.late_grace_minutes, settings.replay_makeup_percent)
    return HTMLResponse(report_html(rollup, lines, await list_visits(db, conference_id), tree))
