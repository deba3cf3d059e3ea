"""The organiser dashboard's view: which points are connected right now, since when, headcounts,
and whether the server still has disk room to record."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import AttendanceSession, Conference, utcnow
from server.domain import attendance
from server.domain.intervals import rate
from server.domain.points import list_points
from server.domain.schedule import as_utc


def _iso(value: dt.datetime | None) -> str | None:
    return as_utc(value).isoformat() if value else None  # type: ignore[union-attr]


async def live_status(db: AsyncSession, conference: Conference, disk: dict) -> dict:
    """Per point: connected now (any open session), since (earliest open join), last seen, headcount.
    ``disk``: the recordings' free space (``RecordingService.disk_status``), passed through."""
    points = await list_points(db, conference.id)
    headcounts = await attendance.latest_headcounts(db, conference.id)
    rows = (
        await db.execute(
            select(
                AttendanceSession.subject_id,
                AttendanceSession.kind,
                AttendanceSession.joined_at,
                AttendanceSession.left_at,
            ).where(
                AttendanceSession.conference_id == conference.id,
                AttendanceSession.subject_type == "point",
            )
        )
    ).tuples()
    since: dict[str, dt.datetime] = {}
    kinds: dict[str, set[str]] = {}
    last_left: dict[str, dt.datetime] = {}
    ever: set[str] = set()
    for subject_id, kind, joined, left in rows:
        ever.add(subject_id)
        if left is None:
            since[subject_id] = min(joined, since.get(subject_id, joined))
            kinds.setdefault(subject_id, set()).add(kind)
        else:
            last_left[subject_id] = max(left, last_left.get(subject_id, left))
    out_points = []
    connected = reported = summoned = present = 0
    for p in points:
        count = headcounts.get(p.id)
        is_connected = p.id in since
        connected += is_connected
        reported += count is not None
        summoned += p.summoned
        present += count.present if count else 0
        out_points.append(
            {
                "id": p.id,
                "name": p.name,
                "level": p.level,
                "parent_id": p.parent_id,
                "operator_name": p.operator_name,
                "summoned": p.summoned,
                "connected": is_connected,
                "since": _iso(since.get(p.id)),
                "via": sorted(kinds.get(p.id, ())),
                "last_left_at": None if is_connected else _iso(last_left.get(p.id)),
                "ever_connected": p.id in ever,
                "headcount": count.present if count else None,
                "headcount_at": _iso(count.reported_at) if count else None,
            }
        )
    return {
        "conference_id": conference.id,
        "status": conference.status,
        "generated_at": utcnow().isoformat(),
        "totals": {
            "points": len(points),
            "connected": connected,
            "disconnected": len(points) - connected,
            "reported": reported,
            "summoned": summoned,
            "present": present,
            "rate": rate(present, summoned),
            "members_online": await attendance.online_count(db, conference.id, "member"),
        },
        "points": out_points,
        "disk": disk,
    }
