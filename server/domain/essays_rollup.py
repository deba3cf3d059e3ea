"""The study roll-up: per point, per district and for the province, how many members attended
(live, through their point, or by replay), submitted an essay, on time, were graded, and how the
grades are spread; and who has not submitted, with their point.

Attendance comes from the attendance report (server.domain.reports), so "attended" and "made up by
replay" mean exactly what they mean there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import Conference, Essay, EssayGrade, Member, SupervisionVisit, utcnow
from server.domain.essays import DEFAULT_SCALE, essays_by_member, get_assignment, scale_of
from server.domain.grading import current_grades
from server.domain.grading_scope import PointTree
from server.domain.members import list_members
from server.domain.points import list_points
from server.domain import attendance
from server.domain.reports import build_report, load_report
from server.domain.supervision import list_visits


def rate(part: int, whole: int) -> float | None:
    return round(part * 100 / whole, 1) if whole else None


@dataclass
class MemberState:
    """One member's line: attendance (``live``, ``point``, ``replay`` or ``absent``) and essay."""

    id: str
    name: str
    unit: str
    point_id: str | None
    attendance: str
    replay_percent: float | None
    submitted: bool
    late: bool
    grade: str | None


@dataclass
class Counts:
    members: int = 0
    attended: int = 0
    replay: int = 0
    submitted: int = 0
    on_time: int = 0
    late: int = 0
    graded: int = 0
    grades: dict[str, int] = field(default_factory=dict)

    def add(self, m: MemberState) -> None:
        self.members += 1
        self.attended += m.attendance != "absent"
        self.replay += m.attendance == "replay"
        self.submitted += m.submitted
        self.on_time += m.submitted and not m.late
        self.late += m.submitted and m.late
        if m.grade is not None:
            self.graded += 1
            self.grades[m.grade] = self.grades.get(m.grade, 0) + 1

    def out(self, scale: list[str]) -> dict:
        data = asdict(self)
        data["grades"] = {g: self.grades.get(g, 0) for g in scale}
        data["attended_rate"] = rate(self.attended, self.members)
        data["replay_rate"] = rate(self.replay, self.members)
        data["submitted_rate"] = rate(self.submitted, self.members)
        data["graded_rate"] = rate(self.graded, self.submitted)
        return data


def member_states(
    members: list[Member], essays: dict[str, Essay], grades: dict[str, EssayGrade], report_members: dict,
    live_ids: Collection[str],
) -> list[MemberState]:
    """``report_members``: the attendance report's ``members`` part (absent and replay lines by id);
    ``live_ids``: members with a session of their own (the others attended at their point)."""
    absent = {a["id"]: a for a in report_members["absent_members"]}
    replay = {r["id"]: r for r in report_members["replay"]}
    states = []
    for m in members:
        essay = essays.get(m.id)
        grade = grades.get(essay.id) if essay else None
        if m.id in absent:
            kind, percent = "absent", absent[m.id]["replay_percent"]
        elif m.id in replay:
            kind, percent = "replay", replay[m.id]["percent_watched"]
        else:
            kind, percent = ("live" if m.id in live_ids else "point"), None
        states.append(MemberState(
            id=m.id, name=m.name, unit=m.unit, point_id=m.point_id, attendance=kind, replay_percent=percent,
            submitted=essay is not None, late=bool(essay and essay.late), grade=grade.grade if grade else None,
        ))
    return states


def _visits_by_point(visits: Sequence[SupervisionVisit]) -> dict[str, dict]:
    """Per point: how many supervision visits, their mean rating, the last one's time."""
    found: dict[str, list[SupervisionVisit]] = {}
    for v in visits:
        found.setdefault(v.point_id, []).append(v)
    return {
        pid: {"count": len(vs), "mean_rating": round(sum(v.rating for v in vs) / len(vs), 1),
              "last_at": max(v.visited_at for v in vs).isoformat()}
        for pid, vs in found.items()
    }


def build_rollup(conference: Conference, tree: PointTree, states: list[MemberState], scale: list[str],
                 deadline: dt.datetime | None, now: dt.datetime, visits: Sequence[SupervisionVisit] = ()) -> dict:
    own: dict[str, Counts] = {pid: Counts() for pid in tree.points}
    subtree: dict[str, Counts] = {pid: Counts() for pid in tree.points}
    totals = Counts()
    for s in states:
        totals.add(s)
        if s.point_id in own:
            own[s.point_id].add(s)
        for pid in tree.lineage(s.point_id):
            subtree[pid].add(s)
    visited = _visits_by_point(visits)
    points = []
    for p in sorted(tree.points.values(), key=lambda p: (p.level != "province", p.level != "district", p.name)):
        district = tree.ancestor_at(p.id, "district")
        points.append({
            "id": p.id, "name": p.name, "level": p.level, "parent_id": p.parent_id,
            "district": district.name if district else "", "own": own[p.id].out(scale),
            "subtree": subtree[p.id].out(scale),
            "visits": visited.get(p.id, {"count": 0, "mean_rating": None, "last_at": None}),
        })
    missing = [
        {"id": s.id, "name": s.name, "unit": s.unit, "point": tree.name(s.point_id),
         "district": (d.name if (d := tree.ancestor_at(s.point_id, "district")) else ""), "attendance": s.attendance}
        for s in states if not s.submitted
    ]
    missing.sort(key=lambda m: (m["district"], m["point"], m["name"]))
    return {
        "conference": {"id": conference.id, "title": conference.title},
        "generated_at": now.isoformat(),
        "deadline": deadline.isoformat() if deadline else None,
        "scale": scale,
        "totals": totals.out(scale),
        "province": [line for line in points if line["level"] == "province"],
        "districts": [line for line in points if line["level"] == "district"],
        "points": points,
        "not_submitted": missing,
    }


async def load_rollup(
    db: AsyncSession, conference: Conference, grace_minutes: int, replay_percent: float
) -> tuple[dict, list[MemberState], PointTree]:
    """The roll-up, the member lines it was built from and the point tree."""
    report = await load_report(db, conference, grace_minutes, replay_percent=replay_percent)
    assignment = await get_assignment(db, conference.id)
    scale = scale_of(assignment) if assignment else list(DEFAULT_SCALE)
    tree = PointTree(await list_points(db, conference.id))
    states = member_states(
        await list_members(db, conference.id), await essays_by_member(db, conference.id),
        await current_grades(db, conference.id), report["members"],
        (await attendance.member_live_ids(db, conference.id)).keys(),
    )
    deadline = assignment.deadline if assignment else None
    rollup = build_rollup(conference, tree, states, scale, deadline, utcnow(), await list_visits(db, conference.id))
    return rollup, states, tree


async def member_attendance(
    db: AsyncSession, conference: Conference, member: Member, grace_minutes: int, replay_percent: float
) -> tuple[str, float | None]:
    """One member's attendance (``live``, ``point``, ``replay``, ``absent``) and replay percent, by
    the attendance report's own rules applied to that member alone (their member page asks)."""
    points = [p for p in await list_points(db, conference.id) if p.id == member.point_id]
    sessions = [s for s in await attendance.point_sessions(db, conference.id) if s.subject_id == member.point_id]
    live = {k: v for k, v in (await attendance.member_live_ids(db, conference.id)).items() if k == member.id}
    views = [v for v in await attendance.replay_views(db, conference.id) if v.subject_id == member.id]
    report = build_report(
        conference, points, sessions, {}, [member], live, views, grace_minutes,
        served=await attendance.replay_served_seconds(db, conference.id, member.id),
        recorded_seconds=await attendance.recorded_seconds(db, conference.id), replay_percent=replay_percent,
    )
    [state] = member_states([member], {}, {}, report["members"], live)
    return state.attendance, state.replay_percent
