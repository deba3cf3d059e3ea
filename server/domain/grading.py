"""Grading: graders scoped to a part of the tree grade the essays of the members under it.

A grader token's subject is the root point of its scope (a commune, a district, the province);
without one it covers the whole conference, like the organiser. Each grading is a new row, so a
regrade keeps the earlier grade, grader and time as history; the newest row is the essay's grade.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import Essay, EssayAssignment, EssayGrade, Member, utcnow
from server.domain.essays import EssayError, scale_of
from server.domain.grading_scope import PointTree
from server.domain.tokens import Principal

MAX_COMMENT = 5_000


def scope_of(principal: Principal, tree: PointTree) -> set[str] | None:
    """The points whose members ``principal`` may grade; None = all (organiser, admin, a grader
    without a scope point)."""
    if principal.role == "grader" and principal.subject_id:
        return tree.subtree(principal.subject_id)
    return None


def in_scope(scope: set[str] | None, member: Member) -> bool:
    return scope is None or (member.point_id is not None and member.point_id in scope)


async def grade(
    db: AsyncSession, assignment: EssayAssignment, essay: Essay, value: str, comment: str, principal: Principal
) -> EssayGrade:
    if value not in scale_of(assignment):
        raise EssayError(422, f"grade must be one of: {', '.join(scale_of(assignment))}")
    if len(comment) > MAX_COMMENT:
        raise EssayError(422, f"the comment is longer than {MAX_COMMENT} characters")
    row = EssayGrade(
        conference_id=essay.conference_id, essay_id=essay.id, grade=value, comment=comment.strip(),
        grader_token_id=principal.token_id, grader_name=principal.name or principal.role, graded_at=utcnow(),
    )
    db.add(row)
    await db.flush()
    return row


async def history(db: AsyncSession, essay_id: str) -> list[EssayGrade]:
    """Newest first: the first is the essay's grade."""
    rows = await db.execute(
        select(EssayGrade).where(EssayGrade.essay_id == essay_id).order_by(EssayGrade.graded_at.desc(), EssayGrade.id)
    )
    return list(rows.scalars())


async def current_grades(db: AsyncSession, conference_id: str) -> dict[str, EssayGrade]:
    """Each graded essay's newest grade, by essay id."""
    rows = await db.execute(
        select(EssayGrade).where(EssayGrade.conference_id == conference_id).order_by(EssayGrade.graded_at)
    )
    return {g.essay_id: g for g in rows.scalars()}
