"""Attendance report (organiser API): JSON, CSV tables and a printable HTML page."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.downloads import csv_download
from server.api.guards import conference_for
from server.deps import DbDep, PrincipalDep, SettingsDep
from server.domain.questions import export_csv as questions_csv
from server.domain.report_export import TABLES, to_csv, to_html
from server.domain.reports import load_report
from server.domain.tokens import Principal
from server.settings import Settings

router = APIRouter(prefix="/api/v1/conferences/{conference_id}/attendance", tags=["attendance"])

# The report's tables, and the written questions (the same file as /questions/export.csv).
CSV_TABLES = (*TABLES, "questions")


async def _report(settings: Settings, db: AsyncSession, conference_id: str, principal: Principal) -> dict:
    conference = await conference_for(db, conference_id, principal, "organiser")
    return await load_report(
        db, conference, settings.late_grace_minutes, replay_percent=settings.replay_makeup_percent
    )


@router.get("/report")
async def report_json(
    conference_id: str,
    db: DbDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> dict:
    """Summoned, present and rate per point, by level and by parent (the parent plus everything
    below it); points late (after scheduled start + DIEMCAU_LATE_GRACE_MINUTES), left before the
    scheduled end, never connected; minutes connected (overlaps merged); members made up by replay."""
    return await _report(settings, db, conference_id, principal)


@router.get("/report.csv", response_class=Response)
async def report_csv(
    conference_id: str,
    db: DbDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    table: str = Query("points", description="one of: " + ", ".join(CSV_TABLES)),
) -> Response:
    if table not in CSV_TABLES:
        raise HTTPException(422, f"table must be one of {', '.join(CSV_TABLES)}")
    if table == "questions":
        await conference_for(db, conference_id, principal, "organiser")
        return csv_download(await questions_csv(db, conference_id), f"attendance-{conference_id}-questions.csv")
    report = await _report(settings, db, conference_id, principal)
    return csv_download(to_csv(report, table), f"attendance-{conference_id}-{table}.csv")


@router.get("/report.html", response_class=HTMLResponse)
async def report_html(
    conference_id: str,
    db: DbDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> HTMLResponse:
    """Printable page (open with ``?token=`` in a browser and print, or save as PDF)."""
    return HTMLResponse(to_html(await _report(settings, db, conference_id, principal)))
