"""Study essays: the assignment, members' essays (typed or uploaded, also sent by their point's
operator), grading by scoped graders, and the roll-up with its CSV tables and charts."""

from __future__ import annotations

import datetime as dt
import json
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile

from server.api.conferences import join_links
from server.api.downloads import csv_download
from server.api.guards import ANY_ROLE, conference_for
from server.db.models import Conference, EssayAssignment, Member, utcnow
from server.deps import DbDep, PrincipalDep, SettingsDep
from server.domain import essays as domain
from server.domain import essays_files, grading, proposals
from server.domain.conferences import as_utc
from server.domain.essays_charts import grades_chart, participation_chart, rate_tree
from server.domain.essays_export import TABLES, essays_csv, rollup_csv
from server.domain.essays_list import EssayLine, essay_lines, reader_scope
from server.domain.essays_rollup import load_rollup, member_attendance
from server.domain.grading_scope import PointTree
from server.domain.materials import MaterialRejected, content_disposition
from server.domain.members import MemberNotFound, get_member
from server.domain.points import list_points
from server.domain.tokens import Principal, issue_token
from server.limits.body_size import allow_upload
from server.settings import Settings

router = APIRouter(prefix="/api/v1/conferences/{conference_id}/essays", tags=["essays"])

WRITERS = ("organiser", "member", "point")  # who may send a member's essay
READERS = (*WRITERS, "grader")


class AssignmentIn(BaseModel):
    prompt: str = Field(min_length=1, max_length=5000)
    deadline: dt.datetime = Field(description="UTC if no offset")
    min_words: int | None = Field(default=None, ge=0, le=100_000)
    max_words: int | None = Field(default=None, ge=1, le=100_000)
    scale: list[str] | None = Field(default=None, max_length=10, description="grades, best first; default: "
                                    + ", ".join(domain.DEFAULT_SCALE))
    accept_late: bool = Field(default=True, description="false: essays after the deadline are refused (409)")


class AssignmentOut(BaseModel):
    prompt: str
    deadline: dt.datetime
    min_words: int | None
    max_words: int | None
    scale: list[str]
    accept_late: bool
    fields: dict[str, str] = Field(description="proposal fields: key -> Vietnamese label")


class ProposalModel(BaseModel):
    title: str = Field(min_length=1, max_length=proposals.MAX_TITLE)
    field: str = Field(max_length=40, description="one of: " + ", ".join(proposals.FIELDS))
    detail: str = Field(default="", max_length=proposals.MAX_DETAIL)


class EssayIn(BaseModel):
    text: str | None = Field(default=None, max_length=domain.MAX_TEXT_CHARS,
                             description="the typed essay; omitted: only the proposals change")
    proposals: list[ProposalModel] | None = Field(default=None, max_length=proposals.MAX_PROPOSALS)


class GradeIn(BaseModel):
    grade: str = Field(min_length=1, max_length=40)
    comment: str = Field(default="", max_length=grading.MAX_COMMENT)


class GraderIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    point_id: str | None = Field(default=None, max_length=32,
                                 description="root of the subtree graded (a point, a district, the province); "
                                 "none: the whole conference")


class GraderOut(BaseModel):
    id: str
    name: str
    point_id: str | None
    token: str
    links: dict[str, str]


class GradeOut(BaseModel):
    grade: str
    comment: str
    grader: str
    graded_at: dt.datetime


class EssayOut(BaseModel):
    member_id: str
    member: str
    unit: str
    point: str
    submitted: bool
    text: str = ""
    words: int = 0
    filename: str | None = None
    file_url: str | None = None
    late: bool = False
    revisions: int = 0
    submitted_by: str | None = None
    submitted_by_name: str | None = None
    first_submitted_at: dt.datetime | None = None
    submitted_at: dt.datetime | None = None
    proposals: list[ProposalModel] = []
    grade: GradeOut | None = None
    grade_history: list[GradeOut] = []


def _assignment_out(a: EssayAssignment) -> AssignmentOut:
    return AssignmentOut(prompt=a.prompt, deadline=as_utc(a.deadline), min_words=a.min_words,  # type: ignore[arg-type]
                         max_words=a.max_words, scale=domain.scale_of(a), accept_late=bool(a.accept_late),
                         fields=proposals.FIELDS)


def _refused(exc: domain.EssayError | proposals.ProposalError | MaterialRejected) -> HTTPException:
    return HTTPException(exc.status, exc.message)


async def _assignment(db: AsyncSession, conference_id: str) -> EssayAssignment:
    row = await domain.get_assignment(db, conference_id)
    if row is None:
        raise HTTPException(404, "no essay assignment has been opened for this conference")
    return row


async def _member_for(db: AsyncSession, conference_id: str, principal: Principal, member_id: str,
                      roles: tuple[str, ...]) -> tuple[Conference, Member]:
    """The member, if ``principal`` may reach their essay: themself, their point's operator, a
    grader whose scope holds their point, the organiser; 403 otherwise."""
    conference = await conference_for(db, conference_id, principal, *roles)
    try:
        member = await get_member(db, conference_id, member_id)
    except MemberNotFound:
        raise HTTPException(404, f"unknown member '{member_id}'")
    role = principal.role
    if role == "member" and principal.subject_id != member.id:
        raise HTTPException(403, "a member reaches only their own essay")
    if role == "point" and (member.point_id is None or principal.subject_id != member.point_id):
        raise HTTPException(403, "a point's operator reaches only the essays of its own delegates")
    if role == "grader":
        tree = PointTree(await list_points(db, conference_id))
        if not grading.in_scope(grading.scope_of(principal, tree), member):
            raise HTTPException(403, "this member is outside the grader's part of the province")
    return conference, member


def _submitter(principal: Principal) -> domain.Submitter:
    kind = {"member": "member", "point": "point"}.get(principal.role, "organiser")
    return domain.Submitter(kind, principal.name or principal.role)


async def _essay_out(db: AsyncSession, member: Member, point_name: str) -> EssayOut:
    essay = await domain.essay_of(db, member.conference_id, member.id)
    who = {"member_id": member.id, "member": member.name, "unit": member.unit, "point": point_name}
    if essay is None:
        return EssayOut(**who, submitted=False)
    history = [GradeOut(grade=g.grade, comment=g.comment, grader=g.grader_name, graded_at=g.graded_at)
               for g in await grading.history(db, essay.id)]
    return EssayOut(
        **who, submitted=True, text=essay.text, words=essay.words, filename=essay.filename, late=bool(essay.late), revisions=essay.revisions,
        file_url=f"/api/v1/conferences/{member.conference_id}/essays/members/{member.id}/file" if essay.stored_name else None,
        submitted_by=essay.submitted_by, submitted_by_name=essay.submitted_by_name,
        first_submitted_at=essay.first_submitted_at, submitted_at=essay.submitted_at,
        proposals=[ProposalModel(title=p.title, field=p.field, detail=p.detail)
                   for p in await proposals.of_essay(db, essay.id)],
        grade=history[0] if history else None, grade_history=history,
    )


async def _point_name(db: AsyncSession, member: Member) -> str:
    return PointTree(await list_points(db, member.conference_id)).name(member.point_id)


@router.get("/assignment", response_model=AssignmentOut)
async def get_assignment(conference_id: str, db: DbDep, principal: PrincipalDep) -> AssignmentOut:
    """The prompt, deadline, word limits, grading scale and proposal fields (404 before it is opened)."""
    await conference_for(db, conference_id, principal, *ANY_ROLE)
    return _assignment_out(await _assignment(db, conference_id))


@router.put("/assignment", response_model=AssignmentOut)
async def put_assignment(conference_id: str, body: AssignmentIn, db: DbDep, principal: PrincipalDep) -> AssignmentOut:
    """Open the essay assignment or change it."""
    await conference_for(db, conference_id, principal, "organiser")
    try:
        row = await domain.set_assignment(db, conference_id, body.prompt, body.deadline, body.min_words,
                                          body.max_words, body.scale, body.accept_late)
    except domain.EssayError as exc:
        raise _refused(exc)
    return _assignment_out(row)


@router.post("/graders", status_code=201, response_model=GraderOut)
async def create_grader(
    conference_id: str, body: GraderIn, db: DbDep, settings: SettingsDep, principal: PrincipalDep
) -> GraderOut:
    """A grader's token: they grade the essays of members under ``point_id`` (403 outside it)."""
    await conference_for(db, conference_id, principal, "organiser")
    if body.point_id is not None and body.point_id not in PointTree(await list_points(db, conference_id)).points:
        raise HTTPException(422, f"unknown point '{body.point_id}'")
    row, secret = await issue_token(db, conference_id, "grader", body.name, body.point_id)
    return GraderOut(id=row.id, name=row.name, point_id=body.point_id, token=secret,
                     links=join_links(settings.base_url, conference_id, "grader", secret))


@router.get("", response_model=list[EssayLine])
async def list_essays(
    conference_id: str,
    db: DbDep,
    principal: PrincipalDep,
    status: Literal["all", "submitted", "missing", "graded", "ungraded"] = "all",
    point_id: str | None = Query(None, max_length=32, description="only this point's subtree"),
) -> list[EssayLine]:
    """Members and their essays, as far as the caller reaches: the organiser all, a grader its
    subtree, a point's operator its own delegates."""
    await conference_for(db, conference_id, principal, "organiser", "grader", "point")
    tree = PointTree(await list_points(db, conference_id))
    return await essay_lines(db, conference_id, tree, reader_scope(principal, tree, point_id), status)


@router.get("/members/{member_id}", response_model=EssayOut)
async def get_essay(conference_id: str, member_id: str, db: DbDep, principal: PrincipalDep) -> EssayOut:
    """A member's essay with its proposals, grade and grading history (not submitted: ``submitted`` false)."""
    _, member = await _member_for(db, conference_id, principal, member_id, READERS)
    return await _essay_out(db, member, await _point_name(db, member))


async def _submit(db: AsyncSession, settings: Settings, member: Member, principal: Principal,
                  text: str | None, file: essays_files.StoredFile | None,
                  items: list[ProposalModel] | None) -> EssayOut:
    """Store the essay version and commit it; a refused one leaves nothing (an uploaded ``file``
    is removed), a replaced file is removed once the new version is committed."""
    now, conference_id = utcnow(), member.conference_id  # a rollback expires ``member``
    try:
        assignment = await _assignment(db, conference_id)
        on_time = domain.check_on_time(assignment, now)
        checked_text = domain.check_text(assignment, text) if text is not None else None
        checked = proposals.check_proposals([proposals.ProposalIn(p.title, p.field, p.detail) for p in items]) \
            if items is not None else None
        if checked_text is None and file is None and await domain.essay_of(db, member.conference_id, member.id) is None:
            raise domain.EssayError(422, "send the essay's text or a file first")
        _, replaced = await domain.submit(db, member, _submitter(principal), on_time, now,
                                          text=checked_text, file=file, proposals=checked)
        await db.commit()
    except BaseException as exc:
        await db.rollback()
        essays_files.remove_file(settings.data_dir, conference_id, file.stored_name if file else None)
        if isinstance(exc, (domain.EssayError, proposals.ProposalError)):
            raise _refused(exc)
        raise
    essays_files.remove_file(settings.data_dir, member.conference_id, replaced)
    return await _essay_out(db, member, await _point_name(db, member))


@router.put("/members/{member_id}", response_model=EssayOut)
async def put_essay(
    conference_id: str, member_id: str, body: EssayIn, db: DbDep, settings: SettingsDep, principal: PrincipalDep
) -> EssayOut:
    """Submit or revise a member's typed essay and/or its proposals (late: marked, or 409 when the
    assignment refuses late essays). The member themself, their point's operator, or the organiser."""
    _, member = await _member_for(db, conference_id, principal, member_id, WRITERS)
    return await _submit(db, settings, member, principal, body.text, None, body.proposals)


@router.post(
    "/members/{member_id}/file",
    response_model=EssayOut,
    openapi_extra={"requestBody": {"content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary"},
                       "proposals": {"type": "string", "description": "JSON list of {title, field, detail}"}},
    }}}}},
    responses={413: {"description": "over DIEMCAU_ESSAY_MAX_UPLOAD_BYTES"},
               415: {"description": "not a PDF, DOCX or ODT file, or content not matching it"}},
)
async def upload_essay(
    conference_id: str, member_id: str, request: Request, db: DbDep, settings: SettingsDep, principal: PrincipalDep
) -> EssayOut:
    """Submit or revise the essay as a PDF, DOCX or ODT file (form field ``file``; optional
    ``proposals``, a JSON list); its text is extracted for search. Refused files leave nothing stored."""
    _, member = await _member_for(db, conference_id, principal, member_id, WRITERS)
    limit = settings.essay_max_upload_bytes
    allow_upload(request, limit)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HTTPException(415, "send the file as multipart/form-data in a field named 'file'")
    await _assignment(db, conference_id)
    form = await request.form(max_files=1, max_fields=3)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(400, "the form has no file: send it in a field named 'file'")
        items = _form_proposals(form.get("proposals"))
        try:
            stored = await essays_files.store_essay_file(settings.data_dir, conference_id, upload.file,
                                                         upload.filename, upload.content_type, limit)
        except MaterialRejected as exc:
            raise _refused(exc)
        return await _submit(db, settings, member, principal, None, stored, items)
    finally:
        await form.close()


def _form_proposals(raw: object) -> list[ProposalModel] | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise HTTPException(422, "proposals must be a JSON list in a text field")
    try:
        data = json.loads(raw)
        if not isinstance(data, list):
            raise ValueError("not a list")
        return [ProposalModel.model_validate(item) for item in data]
    except (ValueError, ValidationError) as exc:
        raise HTTPException(422, f"proposals must be a JSON list of {{title, field, detail}}: {str(exc)[:200]}")


@router.get("/members/{member_id}/file", response_class=FileResponse)
async def download_essay(
    conference_id: str, member_id: str, db: DbDep, settings: SettingsDep, principal: PrincipalDep
) -> FileResponse:
    _, member = await _member_for(db, conference_id, principal, member_id, READERS)
    essay = await domain.essay_of(db, conference_id, member.id)
    if essay is None or not essay.stored_name:
        raise HTTPException(404, "this essay has no file")
    path = essays_files.essay_path(settings.data_dir, conference_id, essay.stored_name)
    if not path.is_file():
        raise HTTPException(410, "the essay's file is missing on the server")
    return FileResponse(path, media_type=essay.content_type or "application/octet-stream", headers={
        "Content-Disposition": content_disposition(essay.filename or "bai-thu-hoach"),
        "X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=0",
    })


@router.post("/members/{member_id}/grade", status_code=201, response_model=GradeOut)
async def grade_essay(
    conference_id: str, member_id: str, body: GradeIn, db: DbDep, principal: PrincipalDep
) -> GradeOut:
    """Grade (or regrade: the earlier grade stays in the history) a member's essay; a grader only
    inside its subtree (403 outside)."""
    _, member = await _member_for(db, conference_id, principal, member_id, ("organiser", "grader"))
    assignment = await _assignment(db, conference_id)
    essay = await domain.essay_of(db, conference_id, member.id)
    if essay is None:
        raise HTTPException(409, "this member has not submitted an essay")
    try:
        row = await grading.grade(db, assignment, essay, body.grade, body.comment, principal)
    except domain.EssayError as exc:
        raise _refused(exc)
    return GradeOut(grade=row.grade, comment=row.comment, grader=row.grader_name, graded_at=row.graded_at)


@router.get("/me")
async def my_status(conference_id: str, db: DbDep, settings: SettingsDep, principal: PrincipalDep) -> dict:
    """A member's own page: attendance (``live``, ``point``, ``replay``, ``absent``), replay
    progress, the assignment, their essay and grade."""
    conference = await conference_for(db, conference_id, principal, "member")
    if principal.subject_id is None:
        raise HTTPException(400, "this member token names no member")
    _, member = await _member_for(db, conference_id, principal, principal.subject_id, ("member",))
    attended, replay_percent = await member_attendance(
        db, conference, member, settings.late_grace_minutes, settings.replay_makeup_percent
    )
    assignment = await domain.get_assignment(db, conference_id)
    return {
        "attendance": attended,
        "replay_percent": replay_percent,
        "assignment": _assignment_out(assignment).model_dump(mode="json") if assignment else None,
        "essay": (await _essay_out(db, member, await _point_name(db, member))).model_dump(mode="json"),
    }


@router.get("/rollup")
async def rollup(conference_id: str, db: DbDep, settings: SettingsDep, principal: PrincipalDep) -> dict:
    """Per point (its own members and its subtree), per district and for the province: members,
    attended (live, at the point or by replay), made up by replay, submitted, on time, late, graded,
    grades; the members who have not submitted; ``charts``: the same per district as SVG, and the
    province tree coloured by submission rate (HTML)."""
    conference = await conference_for(db, conference_id, principal, "organiser")
    data, _, _ = await load_rollup(db, conference, settings.late_grace_minutes, settings.replay_makeup_percent)
    data["charts"] = {
        "participation_svg": participation_chart(data["districts"]),
        "grades_svg": grades_chart(data["districts"], data["scale"]),
        "tree_html": rate_tree(data["points"]),
    }
    return data


@router.get("/rollup.csv", response_class=Response)
async def rollup_table(
    conference_id: str,
    db: DbDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    table: str = Query("points", description="one of: " + ", ".join(TABLES)),
) -> Response:
    """A roll-up table as CSV: ``points``, ``districts`` (with the province), ``not_submitted``, ``essays``."""
    conference = await conference_for(db, conference_id, principal, "organiser")
    if table not in TABLES:
        raise HTTPException(422, f"table must be one of {', '.join(TABLES)}")
    data, states, tree = await load_rollup(db, conference, settings.late_grace_minutes, settings.replay_makeup_percent)
    if table == "essays":
        text = essays_csv(states, tree, await domain.essays_by_member(db, conference_id),
                          await grading.current_grades(db, conference_id))
    else:
        text = rollup_csv(data, table)
    return csv_download(text, f"essays-{conference_id}-{table}.csv")
