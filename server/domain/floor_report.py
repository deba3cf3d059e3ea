"""The floor's part of the conference report: which points spoke, how long, on what subject.

A pure function of the floor history (``floor_events``), so it can be checked exactly: each
``granted`` event opens a turn that the ``ended`` event of the same grant closes; a turn still
open counts up to ``now``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol


class _Event(Protocol):
    at: dt.datetime
    kind: str
    grant_id: str | None
    point_id: str | None
    point_name: str
    level: str
    subject: str
    duration_seconds: float | None
    reason: str | None


def floor_report(events: list[_Event], now: dt.datetime) -> dict[str, Any]:
    """``turns`` in order, ``points`` (one line per point that spoke, in order of its first turn),
    ``requests`` (hands raised) and the totals."""
    ended = {e.grant_id: e for e in events if e.kind == "ended" and e.grant_id}
    turns: list[dict[str, Any]] = []
    for e in events:
        if e.kind != "granted":
            continue
        end = ended.get(e.grant_id)
        seconds = end.duration_seconds if end and end.duration_seconds is not None else (
            ((end.at if end else now) - e.at).total_seconds()
        )
        turns.append({
            "point_id": e.point_id,
            "point_name": e.point_name,
            "level": e.level,
            "subject": e.subject,
            "granted_at": e.at.isoformat(),
            "ended_at": end.at.isoformat() if end else None,
            "duration_seconds": round(max(0.0, seconds), 1),
            "invited": e.reason == "invited",
            "end_reason": end.reason if end else None,
        })
    points: dict[str, dict[str, Any]] = {}
    for turn in turns:
        line = points.setdefault(turn["point_id"] or turn["point_name"], {
            "point_id": turn["point_id"], "point_name": turn["point_name"], "level": turn["level"],
            "turns": 0, "seconds": 0.0, "subjects": [],
        })
        line["turns"] += 1
        line["seconds"] = round(line["seconds"] + turn["duration_seconds"], 1)
        if turn["subject"] and turn["subject"] not in line["subjects"]:
            line["subjects"].append(turn["subject"])
    requested = [e for e in events if e.kind == "requested"]
    spoke = {t["point_id"] for t in turns}
    waiting = {e.point_id: e for e in requested if e.point_id not in spoke}
    return {
        "turns": turns,
        "points": list(points.values()),
        "requests": len(requested),
        "never_granted": [
            {"point_id": e.point_id, "point_name": e.point_name, "level": e.level, "subject": e.subject}
            for e in waiting.values()
        ],
        "total_turns": len(turns),
        "total_seconds": round(sum(t["duration_seconds"] for t in turns), 1),
    }
