"""Written questions (REST): anyone of the conference asks; the chair selects, answers, rejects and
merges; organisers export them. Each change is announced on the conference's event bus."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Awaitable
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.downloads import csv_download
from server.api.guards import ANY_ROLE, conference_for
from server.db.models import Question
from server.deps import BusDep, DbDep, PrincipalDep, QuestionRateDep
from server.domain import questions as domain
from server.domain.tokens import Principal
from server.events.bus import EventBus, conference_topic

router = APIRouter(prefix="/api/v1/conferences/{conference_id}/questions", tags=["questions"])

CHAIR = ("organiser", "speaker")  # and the admin
Status = Literal["open", "selected", "answered", "rejected"]


class QuestionIn(BaseModel):
    text: str = Field(min_length=1, max_length=domain.MAX_TEXT)


class QuestionPatch(BaseModel):
    status: Status | None = None
    answer: str | None = Field(default=None, max_length=domain.MAX_ANSWER, description="null or empty: no answer")


class MergeIn(BaseModel):
    into: str = Field(min_length=1, max_length=32, description="the question this one duplicates")


class QuestionOut(BaseModel):
    id: str
    text: str
    status: Status
    answer: str | None
    author_kind: Literal["point", "member", "viewer", "organiser", "speaker"]
    author_name: str
    point_id: str | None = Field(description="the author's point; shown only to the chair and the author")
    member_id: str | None = Field(description="the author's member record; chair and author only")
    created_at: dt.datetime
    updated_at: dt.datetime
    merged_into: str | None = Field(description="the question this duplicate was merged into")
    merged_count: int = Field(description="duplicates merged into this question")
    votes: int = Field(description="how many asked it: 1 + merged_count")


def is_chair(principal: Principal) -> bool:
    return principal.is_admin or principal.role in CHAIR


def question_out(q: Question, full: bool = True) -> QuestionOut:
    """``full`` False hides whose point or member record another participant's question came from."""
    return QuestionOut(
        id=q.id,
        text=q.text,
        status=q.status,  # type: ignore[arg-type]
        answer=q.answer,
        author_kind=q.author_kind,  # type: ignore[arg-type]
        author_name=q.author_name,
        point_id=q.point_id if full else None,
        member_id=q.member_id if full else None,
        created_at=q.created_at,
        updated_at=q.updated_at,
        merged_into=q.merged_into,
        merged_count=q.merged_count,
        votes=1 + q.merged_count,
    )


async def announce(bus: EventBus, conference_id: str, change: domain.Change) -> None:
    """``question.updated`` for every question changed (chair and organisers see those), and
    ``question.selected`` for everyone when the selection moved."""
    topic = conference_topic(conference_id)
    for q in change.touched:
        await bus.publish(topic, {"type": "question.updated", "v": 1, **question_out(q).model_dump(mode="json")})
    if change.selection_changed:
        shown = domain.selected_view(change.selected) or {"id": None, "text": None, "author_name": None}
        await bus.publish(topic, {"type": "question.selected", "v": 1, **shown})


@router.post("", status_code=201, response_model=QuestionOut)
async def submit_question(
    conference_id: str,
    body: QuestionIn,
    db: DbDep,
    bus: BusDep,
    rate: QuestionRateDep,
    principal: PrincipalDep,
) -> QuestionOut:
    """Ask the chair in writing, before, during or after the conference (at most
    10 questions per token per minute: 429 with ``Retry-After`` beyond)."""
    await conference_for(db, conference_id, principal, *ANY_ROLE)
    try:
        question = await domain.submit(db, conference_id, principal, body.text, rate)
    except domain.TooManyQuestions as exc:
        raise HTTPException(
            429, f"{exc}; try again in {math.ceil(exc.retry_after)} s",
            headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))},
        )
    except domain.QuestionError as exc:
        raise HTTPException(422, str(exc))
    out = question_out(question)
    await db.commit()  # before the chair's pages hear of it and fetch it
    await bus.publish(conference_topic(conference_id), {"type": "question.submitted", "v": 1, **out.model_dump(mode="json")})
    return out


@router.get("", response_model=list[QuestionOut])
async def list_questions(
    conference_id: str,
    db: DbDep,
    principal: PrincipalDep,
    status: Status | None = Query(None, description="only questions in this status"),
    limit: int = Query(1000, ge=1, le=10000),
) -> list[QuestionOut]:
    """The chair and organisers: every question, newest activity first. Everyone else: their own
    questions and the selected one."""
    await conference_for(db, conference_id, principal, *ANY_ROLE)
    if is_chair(principal):
        return [question_out(q) for q in await domain.list_questions(db, conference_id, status, limit)]
    rows = await domain.list_questions(db, conference_id, status, limit, mine=principal)
    return [question_out(q, full=domain.is_own(q, principal)) for q in rows]


@router.get("/export.csv", response_class=Response)
async def export_questions(conference_id: str, db: DbDep, principal: PrincipalDep) -> Response:
    """Every question with its author (point and level, or member and unit), times, status,
    answer and what it was merged into: to forward the unanswered ones."""
    await conference_for(db, conference_id, principal, "organiser")
    return csv_download(await domain.export_csv(db, conference_id), f"questions-{conference_id}.csv")


@router.patch("/{question_id}", response_model=QuestionOut)
async def update_question(
    conference_id: str,
    question_id: str,
    body: QuestionPatch,
    db: DbDep,
    bus: BusDep,
    principal: PrincipalDep,
) -> QuestionOut:
    """Select (at most one question is selected: the previous one goes back to open), answer in
    writing, mark answered or rejected. Duplicates merged into it follow its status and answer."""
    await conference_for(db, conference_id, principal, *CHAIR)
    change = domain.update_question(db, conference_id, question_id, body.model_dump(exclude_unset=True))
    return await _chair_change(db, bus, conference_id, change)


@router.post("/{question_id}/merge", response_model=QuestionOut)
async def merge_question(
    conference_id: str,
    question_id: str,
    body: MergeIn,
    db: DbDep,
    bus: BusDep,
    principal: PrincipalDep,
) -> QuestionOut:
    """Merge a duplicate into another question; returns the question it now counts towards."""
    await conference_for(db, conference_id, principal, *CHAIR)
    return await _chair_change(db, bus, conference_id, domain.merge(db, conference_id, question_id, body.into))


async def _chair_change(db: AsyncSession, bus: EventBus, conference_id: str, work: Awaitable[Any]) -> QuestionOut:
    """Run a chair's change of the questions: 404 unknown question (the one named), 409 a conflict,
    422 a refused value; then commit, announce and return the question changed."""
    try:
        change = await work
    except domain.QuestionNotFound as exc:
        raise HTTPException(404, f"unknown question '{exc}'")
    except domain.QuestionConflict as exc:
        raise HTTPException(409, str(exc))
    except domain.QuestionError as exc:
        raise HTTPException(422, str(exc))
    await db.commit()
    await announce(bus, conference_id, change)
    return question_out(change.question)
