"""Attendance report: per point, rolled up by level and by parent, plus members made up by replay.

A member who was neither live nor at a connected point made the conference up by replay when the
recording segments served to them cover ``replay_percent`` of the conference's recordings; the
progress a replay page reports is shown beside it, but proves nothing and counts for nothing.

The computation (``build_report``) is a pure function of the recorded rows, so it can be checked
exactly; ``load_report`` gathers those rows for one conference.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import asdict, dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import (
    AttendanceSession,
    Conference,
    ConnectionPoint,
    HeadcountReport,
    Member,
    ReplayView,
    utcnow,
)
from server.domain import attendance, floor_store, quality_store
from server.domain.floor_report import floor_report
from server.domain.intervals import merge, rate, total_seconds
from server.domain.members import list_members
from server.domain.points import LEVELS, list_points
from server.domain.quality_report import add_quality
from server.domain.questions import status_counts as question_counts
from server.domain.schedule import as_utc


def _minutes(seconds: float) -> float:
    return round(seconds / 60, 1)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass
class PointLine:
    id: str
    name: str
    level: str
    parent_id: str | None
    parent: str
    operator_name: str
    summoned: int
    present: int
    rate: float | None
    headcount_reported_at: str | None
    connected_now: bool
    first_joined_at: str | None
    last_left_at: str | None
    minutes_connected: float
    connections: int
    late: bool
    minutes_late: float | None
    left_early: bool
    minutes_early: float | None
    never_connected: bool


@dataclass
class Rollup:
    """Sums over a group of points (one level, or a parent and everything below it)."""

    points: int = 0
    connected: int = 0
    connected_now: int = 0
    reported: int = 0
    summoned: int = 0
    present: int = 0
    rate: float | None = None
    late: int = 0
    left_early: int = 0
    never_connected: int = 0
    minutes_connected: float = 0.0

    def add(self, line: PointLine) -> None:
        self.points += 1
        self.connected += 0 if line.never_connected else 1
        self.connected_now += 1 if line.connected_now else 0
        self.reported += 1 if line.headcount_reported_at else 0
        self.summoned += line.summoned
        self.present += line.present
        self.late += 1 if line.late else 0
        self.left_early += 1 if line.left_early else 0
        self.never_connected += 1 if line.never_connected else 0
        self.minutes_connected = round(self.minutes_connected + line.minutes_connected, 1)
        self.rate = rate(self.present, self.summoned)


DEFAULT_REPLAY_PERCENT = 80.0


@dataclass
class ReplayLine:
    """A member who made up by replay: ``seconds_watched`` is what the server served them (distinct
    segments), ``percent_watched`` its share of the recordings; ``views``/``seconds_reported`` come
    from the replay page (information only)."""

    id: str
    name: str
    unit: str
    point: str
    seconds_watched: float
    minutes_watched: float
    views: int
    duration_seconds: float | None
    percent_watched: float | None
    seconds_reported: float = 0.0


@dataclass
class MemberSummary:
    total: int = 0
    attended_live: int = 0
    via_point: int = 0
    made_up_by_replay: int = 0
    absent: int = 0
    replay: list[ReplayLine] = field(default_factory=list)
    absent_members: list[dict] = field(default_factory=list)


def _point_lines(
    conference: Conference,
    points: list[ConnectionPoint],
    sessions: list[AttendanceSession],
    headcounts: dict[str, HeadcountReport],
    now: dt.datetime,
    grace: dt.timedelta,
) -> list[PointLine]:
    start, end = as_utc(conference.scheduled_start), as_utc(conference.scheduled_end)
    late_after = start + grace if start else None
    by_point: dict[str, list[AttendanceSession]] = defaultdict(list)
    for s in sessions:
        if s.subject_type == "point" and s.subject_id:
            by_point[s.subject_id].append(s)
    names = {p.id: p.name for p in points}
    lines = []
    for p in points:
        own = by_point.get(p.id, [])
        spans = [(as_utc(s.joined_at), as_utc(s.left_at) or now) for s in own]
        connected_now = any(s.left_at is None for s in own)
        first = min((a for a, _ in spans), default=None)
        last_left = None if connected_now or not own else max(as_utc(s.left_at) for s in own)
        late = bool(first and late_after and first > late_after)
        left_early = bool(last_left and end and last_left < end)
        count = headcounts.get(p.id)
        present = count.present if count else 0
        lines.append(
            PointLine(
                id=p.id,
                name=p.name,
                level=p.level,
                parent_id=p.parent_id,
                parent=names.get(p.parent_id or "", ""),
                operator_name=p.operator_name,
                summoned=p.summoned,
                present=present,
                rate=rate(present, p.summoned),
                headcount_reported_at=_iso(as_utc(count.reported_at)) if count else None,
                connected_now=connected_now,
                first_joined_at=_iso(first),
                last_left_at=_iso(last_left),
                minutes_connected=_minutes(total_seconds(spans)),
                connections=len(merge(spans)),
                late=late,
                minutes_late=_minutes((first - start).total_seconds()) if late and start and first else None,
                left_early=left_early,
                minutes_early=_minutes((end - last_left).total_seconds()) if left_early and end and last_left else None,
                never_connected=not own,
            )
        )
    return lines


def _by_parent(points: list[ConnectionPoint], lines: list[PointLine]) -> list[dict]:
    children: dict[str, list[str]] = defaultdict(list)
    for p in points:
        if p.parent_id:
            children[p.parent_id].append(p.id)
    line_of = {line.id: line for line in lines}
    result = []
    for p in points:
        if p.id not in children:
            continue
        total = Rollup()
        stack, seen = [p.id], set()
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            total.add(line_of[current])
            stack.extend(children.get(current, ()))
        result.append(
            {"id": p.id, "name": p.name, "level": p.level, "children": len(children[p.id]), **asdict(total)}
        )
    return result


def _members(
    members: list[Member],
    points: dict[str, ConnectionPoint],
    live_seconds: dict[str, float],
    connected_points: set[str],
    views: list[ReplayView],
    served: dict[str, float],
    recorded: float,
    replay_percent: float,
) -> MemberSummary:
    by_member: dict[str, list[ReplayView]] = defaultdict(list)
    for v in views:
        if v.subject_type == "member" and v.subject_id:
            by_member[v.subject_id].append(v)
    summary = MemberSummary(total=len(members))
    for m in members:
        point_name = points[m.point_id].name if m.point_id in points else ""
        seconds = served.get(m.id, 0.0)
        percent = min(100.0, round(seconds * 100 / recorded, 1)) if recorded > 0 else None
        if m.id in live_seconds:
            summary.attended_live += 1
        elif m.point_id and m.point_id in connected_points:
            summary.via_point += 1
        elif recorded > 0 and seconds > 0 and seconds >= recorded * replay_percent / 100:
            summary.made_up_by_replay += 1
            reported = by_member.get(m.id, [])
            summary.replay.append(
                ReplayLine(
                    id=m.id,
                    name=m.name,
                    unit=m.unit,
                    point=point_name,
                    seconds_watched=round(seconds, 1),
                    minutes_watched=_minutes(seconds),
                    views=len(reported),
                    duration_seconds=round(recorded, 1),
                    percent_watched=percent,
                    seconds_reported=round(sum(v.seconds_watched for v in reported), 1),
                )
            )
        else:
            summary.absent += 1
            summary.absent_members.append(
                {"id": m.id, "name": m.name, "unit": m.unit, "point": point_name,
                 "replay_percent": percent if seconds > 0 else None}
            )
    return summary


def build_report(
    conference: Conference,
    points: list[ConnectionPoint],
    sessions: list[AttendanceSession],
    headcounts: dict[str, HeadcountReport],
    members: list[Member],
    member_live_seconds: dict[str, float],
    views: list[ReplayView],
    grace_minutes: int,
    now: dt.datetime | None = None,
    served: dict[str, float] | None = None,
    recorded_seconds: float = 0.0,
    replay_percent: float = DEFAULT_REPLAY_PERCENT,
) -> dict:
    """``served``: seconds of recording served per member; ``recorded_seconds``: the conference's
    recordings together; a member made up by replay when served >= ``replay_percent`` of it."""
    now = now or utcnow()
    grace = dt.timedelta(minutes=grace_minutes)
    lines = _point_lines(conference, points, sessions, headcounts, now, grace)
    totals = Rollup()
    levels = {level: Rollup() for level in LEVELS}
    for line in lines:
        totals.add(line)
        levels.setdefault(line.level, Rollup()).add(line)
    start = as_utc(conference.scheduled_start)
    member_summary = _members(
        members,
        {p.id: p for p in points},
        member_live_seconds,
        {line.id for line in lines if not line.never_connected},
        views,
        served or {},
        recorded_seconds,
        replay_percent,
    )
    return {
        "conference": {
            "id": conference.id,
            "title": conference.title,
            "status": conference.status,
            "scheduled_start": _iso(start),
            "scheduled_end": _iso(as_utc(conference.scheduled_end)),
        },
        "generated_at": now.isoformat(),
        "grace_minutes": grace_minutes,
        "replay_percent": replay_percent,
        "recorded_seconds": round(recorded_seconds, 1),
        "late_after": _iso(start + grace) if start else None,
        "totals": asdict(totals),
        "by_level": [{"level": level, **asdict(r)} for level, r in levels.items()],
        "by_parent": _by_parent(points, lines),
        "points": [asdict(line) for line in lines],
        "late": [
            {"id": x.id, "name": x.name, "level": x.level, "first_joined_at": x.first_joined_at,
             "minutes_late": x.minutes_late}
            for x in lines if x.late
        ],
        "left_early": [
            {"id": x.id, "name": x.name, "level": x.level, "last_left_at": x.last_left_at,
             "minutes_early": x.minutes_early}
            for x in lines if x.left_early
        ],
        "never_connected": [
            {"id": x.id, "name": x.name, "level": x.level} for x in lines if x.never_connected
        ],
        "members": asdict(member_summary),
    }


async def load_report(
    db: AsyncSession,
    conference: Conference,
    grace_minutes: int,
    now: dt.datetime | None = None,
    replay_percent: float = DEFAULT_REPLAY_PERCENT,
) -> dict:
    report = build_report(
        conference,
        await list_points(db, conference.id),
        await attendance.point_sessions(db, conference.id),
        await attendance.latest_headcounts(db, conference.id),
        await list_members(db, conference.id),
        await attendance.member_live_ids(db, conference.id),
        await attendance.replay_views(db, conference.id),
        grace_minutes,
        now,
        served=await attendance.replay_served_seconds(db, conference.id),
        recorded_seconds=await attendance.recorded_seconds(db, conference.id),
        replay_percent=replay_percent,
    )
    # Written questions by status (the list itself: report.csv?table=questions).
    report["questions"] = await question_counts(db, conference.id)
    # The floor: which points spoke, for how long, on what subject (from its history).
    report["floor"] = floor_report(await floor_store.history(db, conference.id), now or utcnow())
    # Link quality: minutes per rendition, minutes poor, freezes; the roll-ups' share of poor links.
    add_quality(report, await quality_store.totals_of(db, conference.id))
    return report
