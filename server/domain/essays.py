"""Study essays (bài thu hoạch): a conference's assignment and each member's essay.

A member writes one essay per conference, typed or uploaded, and revises it in place until the
deadline; after it the essay is accepted and marked late, or refused when the assignment says so. A
point's operator may submit for the delegates of its point who have no device, and the organiser for
anyone; the essay records who sent its latest version. Each essay carries its proposals part
(server.domain.proposals), replaced as a whole when the member sends it again.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import EssayAssignment, Essay, Member, utcnow
from server.domain.conferences import as_utc
from server.domain.essays_files import StoredFile
from server.domain.proposals import ProposalIn, replace_proposals

DEFAULT_SCALE = ("xuất sắc", "tốt", "khá", "đạt", "chưa đạt")
MAX_TEXT_CHARS = 100_000
MAX_GRADES = 10
_WORD = re.compile(r"\w+")


class EssayError(ValueError):
    """A request the essay rules refuse; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Submitter:
    """Who sends an essay version: ``member`` (their own link), ``point`` (the point's operator, for a
    delegate without a device) or ``organiser``."""

    kind: str
    name: str


def count_words(text: str) -> int:
    return len(_WORD.findall(text))


def scale_of(assignment: EssayAssignment) -> list[str]:
    return list(json.loads(assignment.scale))


def check_scale(scale: Sequence[str] | None) -> list[str]:
    grades = [g.strip() for g in (scale or DEFAULT_SCALE)]
    if not 2 <= len(grades) <= MAX_GRADES or any(not g or len(g) > 40 for g in grades):
        raise EssayError(422, f"a grading scale has 2 to {MAX_GRADES} grades of 1-40 characters")
    if len(set(grades)) != len(grades):
        raise EssayError(422, "the grades of a scale must differ")
    return grades


async def get_assignment(db: AsyncSession, conference_id: str) -> EssayAssignment | None:
    return await db.get(EssayAssignment, conference_id)


async def set_assignment(
    db: AsyncSession,
    conference_id: str,
    prompt: str,
    deadline: dt.datetime,
    min_words: int | None,
    max_words: int | None,
    scale: Sequence[str] | None,
    accept_late: bool,
) -> EssayAssignment:
    """Open the assignment, or change it (a new deadline applies to later submissions only)."""
    prompt = prompt.strip()
    if not prompt:
        raise EssayError(422, "the assignment needs a prompt")
    if min_words is not None and max_words is not None and min_words > max_words:
        raise EssayError(422, "min_words is larger than max_words")
    grades = check_scale(scale)
    row = await get_assignment(db, conference_id)
    if row is None:
        row = EssayAssignment(conference_id=conference_id, created_at=utcnow())
        db.add(row)
    row.prompt = prompt
    row.deadline = as_utc(deadline) or deadline
    row.min_words, row.max_words = min_words, max_words
    row.scale = json.dumps(grades, ensure_ascii=False)
    row.accept_late = int(accept_late)
    row.updated_at = utcnow()
    await db.flush()
    return row


def _check_words(assignment: EssayAssignment, words: int) -> None:
    if assignment.min_words is not None and words < assignment.min_words:
        raise EssayError(422, f"the essay has {words} words, the assignment asks for at least {assignment.min_words}")
    if assignment.max_words is not None and words > assignment.max_words:
        raise EssayError(422, f"the essay has {words} words, the assignment allows at most {assignment.max_words}")


def check_on_time(assignment: EssayAssignment, now: dt.datetime) -> bool:
    """True when on time; False when late and accepted; :class:`EssayError` (409) when refused."""
    late = now > as_utc(assignment.deadline)  # type: ignore[operator]
    if late and not assignment.accept_late:
        raise EssayError(409, "the deadline has passed and this assignment does not accept late essays")
    return not late


def check_text(assignment: EssayAssignment, text: str) -> str:
    text = text.strip()
    if not text:
        raise EssayError(422, "the essay is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise EssayError(422, f"the essay is longer than {MAX_TEXT_CHARS} characters")
    _check_words(assignment, count_words(text))
    return text


async def essay_of(db: AsyncSession, conference_id: str, member_id: str) -> Essay | None:
    query = select(Essay).where(Essay.conference_id == conference_id, Essay.member_id == member_id)
    return (await db.execute(query)).scalar_one_or_none()


async def submit(
    db: AsyncSession,
    member: Member,
    submitter: Submitter,
    on_time: bool,
    now: dt.datetime,
    text: str | None = None,
    file: StoredFile | None = None,
    proposals: Sequence[ProposalIn] | None = None,
) -> tuple[Essay, str | None]:
    """Store a member's essay (new or revised) from typed ``text`` or an uploaded ``file``; the
    proposals part is replaced when given. Returns the essay and the stored name of a file it no
    longer uses (the caller removes it once the change is committed)."""
    essay = await essay_of(db, member.conference_id, member.id)
    replaced = essay.stored_name if essay is not None else None
    if essay is None:
        essay = Essay(conference_id=member.conference_id, member_id=member.id, revisions=0, first_submitted_at=now)
        db.add(essay)
    if file is not None:
        essay.text, essay.filename, essay.stored_name = file.text, file.filename, file.stored_name
        essay.content_type, essay.size = file.content_type, file.size
    elif text is not None:
        essay.text = text
        essay.filename = essay.stored_name = essay.content_type = None
        essay.size = len(text.encode())
    else:
        replaced = None  # proposals only: the essay itself stays as it was
    essay.words = count_words(essay.text)
    essay.late = int(not on_time)
    essay.revisions = (essay.revisions or 0) + 1
    essay.submitted_by, essay.submitted_by_name = submitter.kind, submitter.name[:200]
    essay.submitted_at = now
    await db.flush()
    if proposals is not None:
        await replace_proposals(db, essay, proposals)
    return essay, (replaced if replaced != essay.stored_name else None)


async def essays_by_member(db: AsyncSession, conference_id: str) -> dict[str, Essay]:
    rows = await db.execute(select(Essay).where(Essay.conference_id == conference_id))
    return {e.member_id: e for e in rows.scalars()}
