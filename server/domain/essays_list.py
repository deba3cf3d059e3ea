"""The list of members and their essays that a caller works through: a grader its subtree, a
point's operator its own delegates, the organiser everyone; filtered by where each essay stands."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from server.domain.essays import essays_by_member
from server.domain.grading import current_grades, scope_of
from server.domain.grading_scope import PointTree
from server.domain.members import list_members
from server.domain.tokens import Principal

STATUSES = ("all", "submitted", "missing", "graded", "ungraded")


@dataclass
class EssayLine:
    member_id: str
    member: str
    unit: str
    point: str
    submitted: bool
    late: bool
    words: int
    submitted_at: dt.datetime | None
    submitted_by: str | None
    grade: str | None
    grader: str | None


def reader_scope(principal: Principal, tree: PointTree, point_id: str | None) -> set[str] | None:
    """The points whose members the caller lists (None: all), narrowed to ``point_id``'s subtree."""
    scope = {principal.subject_id or ""} if principal.role == "point" else scope_of(principal, tree)
    if point_id is not None:
        wanted = tree.subtree(point_id)
        scope = wanted if scope is None else scope & wanted
    return scope


async def essay_lines(
    db: AsyncSession, conference_id: str, tree: PointTree, scope: set[str] | None, status: str
) -> list[EssayLine]:
    essays = await essays_by_member(db, conference_id)
    grades = await current_grades(db, conference_id)
    lines = []
    for m in await list_members(db, conference_id):
        if scope is not None and m.point_id not in scope:
            continue
        essay = essays.get(m.id)
        grade = grades.get(essay.id) if essay else None
        keep = {"all": True, "submitted": essay is not None, "missing": essay is None,
                "graded": grade is not None, "ungraded": essay is not None and grade is None}[status]
        if keep:
            lines.append(EssayLine(
                member_id=m.id, member=m.name, unit=m.unit, point=tree.name(m.point_id), submitted=essay is not None,
                late=bool(essay and essay.late), words=essay.words if essay else 0,
                submitted_at=essay.submitted_at if essay else None, submitted_by=essay.submitted_by if essay else None,
                grade=grade.grade if grade else None, grader=grade.grader_name if grade else None,
            ))
    return lines
