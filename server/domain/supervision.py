"""Supervision visits: supervision teams (tổ giám sát) check in at the points they visit during a
session, with a short note and a rating of how the session was run.

A team may be scoped to some districts (or any points): it then visits only the points of their
subtrees. Its supervisors' tokens have the team as subject; a supervisor token without a team covers
the whole conference.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import SupervisionTeam, SupervisionVisit, utcnow
from server.domain.grading_scope import PointTree
from server.domain.tokens import Principal

RATINGS = range(1, 6)  # 1 poorly run .. 5 very well run
MAX_NOTE = 2_000


class SupervisionError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def create_team(db: AsyncSession, conference_id: str, name: str, point_ids: Sequence[str],
                      tree: PointTree) -> SupervisionTeam:
    name = name.strip()
    if not name:
        raise SupervisionError(422, "the team needs a name")
    unknown = sorted(set(point_ids) - set(tree.points))
    if unknown:
        raise SupervisionError(422, f"unknown point(s): {', '.join(unknown[:10])}")
    team = SupervisionTeam(conference_id=conference_id, name=name[:200], point_ids=json.dumps(sorted(set(point_ids))),
                           created_at=utcnow())
    db.add(team)
    await db.flush()
    return team


async def list_teams(db: AsyncSession, conference_id: str) -> list[SupervisionTeam]:
    rows = await db.execute(select(SupervisionTeam).where(SupervisionTeam.conference_id == conference_id)
                            .order_by(SupervisionTeam.created_at))
    return list(rows.scalars())


async def scope_of(db: AsyncSession, principal: Principal, tree: PointTree) -> set[str]:
    """The points ``principal`` may visit: a team's subtrees, else every point."""
    if principal.role == "supervisor" and principal.subject_id:
        team = await db.get(SupervisionTeam, principal.subject_id)
        if team is None or team.conference_id != principal.conference_id:
            return set()
        roots = json.loads(team.point_ids)
        if roots:
            return tree.covering(roots)
    return set(tree.points)


async def check_in(db: AsyncSession, conference_id: str, principal: Principal, point_id: str, rating: int,
                   note: str, scope: set[str]) -> SupervisionVisit:
    if point_id not in scope:
        raise SupervisionError(403, "this point is outside the team's districts")
    if rating not in RATINGS:
        raise SupervisionError(422, "rating must be 1 to 5")
    if len(note) > MAX_NOTE:
        raise SupervisionError(422, f"the note is longer than {MAX_NOTE} characters")
    visit = SupervisionVisit(
        conference_id=conference_id, point_id=point_id,
        team_id=principal.subject_id if principal.role == "supervisor" else None,
        supervisor=principal.name or principal.role, token_id=principal.token_id, rating=rating,
        note=note.strip(), visited_at=utcnow(),
    )
    db.add(visit)
    await db.flush()
    return visit


async def list_visits(db: AsyncSession, conference_id: str, point_ids: set[str] | None = None) -> list[SupervisionVisit]:
    rows = await db.execute(select(SupervisionVisit).where(SupervisionVisit.conference_id == conference_id)
                            .order_by(SupervisionVisit.visited_at))
    return [v for v in rows.scalars() if point_ids is None or v.point_id in point_ids]
