"""Written questions to the chair: submitted by any token holder of a conference before, during or
after it, then selected, answered, rejected or merged with a duplicate by the chair.

At most one question of a conference is *selected* (shown on every point's page and the speaker
page): selecting one puts the previous one back to ``open``. A merged duplicate points at the
question it was merged into (``merged_into``, always a question that is not merged itself), which
counts its duplicates (``merged_count``); duplicates follow their target's status and answer, so the
export shows every author whether their question was answered.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import ConnectionPoint, Member, Question, utcnow
from server.domain.csvio import write_csv
from server.domain.rows import conference_row, owned_row
from server.domain.tokens import Principal

MAX_TEXT = 500
MAX_ANSWER = 2000
STATUSES = ("open", "selected", "answered", "rejected")
RATE_LIMIT = 10  # questions one token may submit ...
RATE_WINDOW = 60.0  # ... within this many seconds


class QuestionError(ValueError):
    """A request that cannot be carried out as asked (422)."""


class QuestionConflict(QuestionError):
    """A request that contradicts the question's state, e.g. merging it twice (409)."""


class QuestionNotFound(LookupError):
    pass


class TooManyQuestions(Exception):
    """The token submitted ``RATE_LIMIT`` questions within the window; retry after ``retry_after`` s."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"at most {RATE_LIMIT} questions per {RATE_WINDOW:.0f} seconds")
        self.retry_after = retry_after


class SubmitRate:
    """A sliding window of accepted submissions per token, in this process (like the other caps,
    which apply per server process). ``admit`` checks and records in one step, with no await in
    between, so concurrent requests of one token cannot all slip under the limit."""

    def __init__(
        self, limit: int = RATE_LIMIT, window: float = RATE_WINDOW, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._times: dict[str, deque[float]] = {}

    def admit(self, key: str) -> None:
        """Record a submission by ``key``, or raise :class:`TooManyQuestions` without recording it."""
        now = self.clock()
        times = self._times.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.limit:
            raise TooManyQuestions(times[0] + self.window - now)
        times.append(now)
        if len(self._times) > 10_000:  # forget tokens that have been quiet for a whole window
            self._times = {k: v for k, v in self._times.items() if v and v[-1] > now - self.window}


@dataclass(frozen=True)
class Author:
    kind: str  # point, member, viewer, organiser or speaker (the admin counts as an organiser)
    name: str
    point_id: str | None = None
    member_id: str | None = None
    token_id: str | None = None


async def author_of(db: AsyncSession, conference_id: str, principal: Principal) -> Author:
    """Who asks: a point or member by its record's name (the token's name if the record is gone)."""
    if principal.role == "point" and principal.subject_id:
        point = await owned_row(db, ConnectionPoint, principal.subject_id, conference_id=conference_id)
        if point is not None:
            return Author("point", point.name, point_id=point.id, token_id=principal.token_id)
    if principal.role == "member" and principal.subject_id:
        member = await owned_row(db, Member, principal.subject_id, conference_id=conference_id)
        if member is not None:
            return Author("member", member.name, member_id=member.id, token_id=principal.token_id)
    kind = "organiser" if principal.is_admin else principal.role
    return Author(kind, principal.name or principal.role, token_id=principal.token_id)


def clean_text(text: str, limit: int, what: str) -> str:
    text = text.strip()
    if not text:
        raise QuestionError(f"the {what} is empty")
    if len(text) > limit:
        raise QuestionError(f"the {what} is longer than {limit} characters")
    return text


async def submit(
    db: AsyncSession, conference_id: str, principal: Principal, text: str, rate: SubmitRate
) -> Question:
    """A new open question; :class:`TooManyQuestions` beyond the token's rate."""
    text = clean_text(text, MAX_TEXT, "question")
    author = await author_of(db, conference_id, principal)
    rate.admit(f"{conference_id}:{principal.token_id or 'admin'}")
    now = utcnow()
    question = Question(
        conference_id=conference_id,
        text=text,
        status="open",
        author_kind=author.kind,
        author_name=author.name[:200],
        point_id=author.point_id,
        member_id=author.member_id,
        token_id=author.token_id,
        created_at=now,
        updated_at=now,
        merged_count=0,
    )
    db.add(question)
    await db.flush()
    return question


async def get_question(db: AsyncSession, conference_id: str, question_id: str) -> Question:
    return await conference_row(db, Question, question_id, conference_id, QuestionNotFound)


async def selected_question(db: AsyncSession, conference_id: str) -> Question | None:
    query = select(Question).where(Question.conference_id == conference_id, Question.status == "selected")
    return (await db.execute(query.limit(1))).scalar_one_or_none()


def is_own(question: Question, principal: Principal) -> bool:
    """A point's or member's questions are those of its record (any of its tokens); others' by token."""
    if principal.role == "point" and principal.subject_id:
        return question.point_id == principal.subject_id
    if principal.role == "member" and principal.subject_id:
        return question.member_id == principal.subject_id
    return principal.token_id is not None and question.token_id == principal.token_id


async def list_questions(
    db: AsyncSession, conference_id: str, status: str | None = None, limit: int | None = None,
    mine: Principal | None = None,
) -> list[Question]:
    """Newest activity first; ``mine``: only that caller's own questions and the selected one."""
    query = select(Question).where(Question.conference_id == conference_id)
    if status is not None:
        query = query.where(Question.status == status)
    if mine is not None:
        if mine.role == "point" and mine.subject_id:
            own = Question.point_id == mine.subject_id
        elif mine.role == "member" and mine.subject_id:
            own = Question.member_id == mine.subject_id
        else:
            own = Question.token_id == mine.token_id
        query = query.where(own | (Question.status == "selected"))
    query = query.order_by(Question.updated_at.desc(), Question.id)
    if limit is not None:
        query = query.limit(limit)
    return list((await db.execute(query)).scalars())


@dataclass
class Change:
    """What a chair's action changed: the questions to announce, and the selection if it moved
    (``selection_changed``; ``selected`` None = nothing is selected any more)."""

    question: Question
    touched: list[Question]
    selection_changed: bool = False
    selected: Question | None = None


async def _duplicates(db: AsyncSession, question: Question) -> list[Question]:
    query = select(Question).where(Question.merged_into == question.id).order_by(Question.created_at)
    return list((await db.execute(query)).scalars())


async def update_question(
    db: AsyncSession, conference_id: str, question_id: str, changes: dict
) -> Change:
    """Set ``status`` and/or ``answer``; duplicates merged into it follow (except *selected*)."""
    question = await get_question(db, conference_id, question_id)
    status, now = changes.get("status"), utcnow()
    if status is not None and status not in STATUSES:
        raise QuestionError(f"status must be one of {', '.join(STATUSES)}")
    if status == "selected" and question.merged_into:
        raise QuestionConflict(f"question merged into '{question.merged_into}': select that one")
    was_selected = question.status == "selected"
    change = Change(question, [question])
    if status == "selected" and not was_selected:
        previous = await selected_question(db, conference_id)
        if previous is not None:
            previous.status, previous.updated_at = "open", now
            change.touched.append(previous)
        change.selection_changed, change.selected = True, question
    elif status is not None and status != "selected" and was_selected:
        change.selection_changed = True
    if status is not None:
        question.status = status
    if "answer" in changes:
        answer = changes["answer"]
        question.answer = clean_text(answer, MAX_ANSWER, "answer") if answer and answer.strip() else None
    question.updated_at = now
    for duplicate in await _duplicates(db, question):
        if question.status != "selected":
            duplicate.status = question.status
        duplicate.answer, duplicate.updated_at = question.answer, now
        change.touched.append(duplicate)
    await db.flush()
    return change


async def merge(db: AsyncSession, conference_id: str, question_id: str, into_id: str) -> Change:
    """Merge a duplicate into another question (or into the one that question was merged into)."""
    question = await get_question(db, conference_id, question_id)
    target = await get_question(db, conference_id, into_id)
    if question.merged_into:
        raise QuestionConflict(f"question '{question.id}' is already merged into '{question.merged_into}'")
    if target.merged_into:
        target = await get_question(db, conference_id, target.merged_into)
    if target.id == question.id:
        raise QuestionError("a question cannot be merged into itself")
    now = utcnow()
    change = Change(target, [target, question])
    for duplicate in await _duplicates(db, question):  # its own duplicates move along with it
        duplicate.merged_into, duplicate.updated_at = target.id, now
        change.touched.append(duplicate)
    target.merged_count += 1 + question.merged_count
    target.updated_at = now
    if question.status == "selected":
        change.selection_changed = True
    question.merged_into, question.merged_count, question.updated_at = target.id, 0, now
    for duplicate in change.touched[1:]:
        duplicate.status = "open" if target.status == "selected" else target.status
        duplicate.answer = target.answer
    await db.flush()
    return change


async def status_counts(db: AsyncSession, conference_id: str) -> dict:
    """For the report: questions by status, and how many were duplicates merged into another."""
    query = (
        select(Question.status, func.count(), func.count(Question.merged_into))
        .where(Question.conference_id == conference_id)
        .group_by(Question.status)
    )
    by_status = dict.fromkeys(STATUSES, 0)
    merged = 0
    for status, count, merged_here in await db.execute(query):
        by_status[status] = by_status.get(status, 0) + count
        merged += merged_here
    return {"total": sum(by_status.values()), "by_status": by_status, "merged": merged}


EXPORT_HEADER = (
    "id", "created_at", "updated_at", "status", "author_kind", "author", "level", "unit", "text",
    "answer", "merged_into", "merged_count",
)


def _iso(value) -> str:  # type: ignore[no-untyped-def]
    return value.isoformat() if value else ""


async def export_rows(db: AsyncSession, conference_id: str) -> list[Sequence]:
    """Every question in the order asked, with its author's point level or member unit."""
    questions = (
        await db.execute(
            select(Question, ConnectionPoint.level, Member.unit)
            .outerjoin(ConnectionPoint, ConnectionPoint.id == Question.point_id)
            .outerjoin(Member, Member.id == Question.member_id)
            .where(Question.conference_id == conference_id)
            .order_by(Question.created_at, Question.id)
        )
    ).all()
    return [
        [q.id, _iso(q.created_at), _iso(q.updated_at), q.status, q.author_kind, q.author_name, level or "",
         unit or "", q.text, q.answer or "", q.merged_into or "", q.merged_count]
        for q, level, unit in questions
    ]


async def export_csv(db: AsyncSession, conference_id: str) -> str:
    """The questions as a spreadsheet-safe CSV (no cell is a formula: the text is anyone's)."""
    return write_csv(EXPORT_HEADER, await export_rows(db, conference_id))


def selected_view(question: Question | None) -> dict | None:
    """What everyone may see of the selected question (pages, the WebSocket): no ids of its author."""
    if question is None:
        return None
    return {"id": question.id, "text": question.text, "author_name": question.author_name}
