"""The report's link quality: per point, minutes watched on each rendition, minutes poor and
freezes; in the roll-ups (by level, by parent, the totals) the share of points with a poor link.

A point had a poor link when its quality was poor for at least ``POOR_SHARE`` of the time it
watched. The share counts only points that watched live (a point never connected says nothing
about its link). A pure function of the report and the stored rows (``quality_points``), applied
to the report ``server.domain.reports`` built.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Protocol

POOR_SHARE = 0.2  # of the watched time, poor


class _Row(Protocol):
    point_id: str
    seconds_full: float
    seconds_low: float
    seconds_audio: float
    seconds_poor: float
    freezes: int
    freeze_seconds: float


def _minutes(seconds: float) -> float:
    return round(seconds / 60, 1)


def point_quality(row: _Row | None) -> dict[str, Any]:
    """One point's figures for the report (zeros for a point that never watched)."""
    full, low, audio = (row.seconds_full, row.seconds_low, row.seconds_audio) if row else (0.0, 0.0, 0.0)
    watched = full + low + audio
    poor = row.seconds_poor if row else 0.0
    return {
        "minutes_full": _minutes(full),
        "minutes_low": _minutes(low),
        "minutes_audio": _minutes(audio),
        "minutes_watched": _minutes(watched),
        "minutes_poor": _minutes(poor),
        "freezes": row.freezes if row else 0,
        "freeze_seconds": round(row.freeze_seconds, 1) if row else 0.0,
        "watched": watched > 0,
        "poor_link": watched > 0 and poor >= POOR_SHARE * watched,
    }


def _share(poor: int, watched: int) -> float | None:
    return round(poor * 100 / watched, 1) if watched else None


def _rollup(quality: list[dict[str, Any]]) -> dict[str, Any]:
    watched = sum(1 for q in quality if q["watched"])
    poor = sum(1 for q in quality if q["poor_link"])
    return {"points_watched": watched, "poor_links": poor, "poor_share": _share(poor, watched),
            "minutes_poor": round(sum(q["minutes_poor"] for q in quality), 1)}


def add_quality(report: dict[str, Any], rows: list[_Row]) -> None:
    """Add the quality figures to ``report`` in place: each point line gets them, each roll-up
    (by level, by parent with everything below it, the totals) gets ``points_watched``,
    ``poor_links``, ``poor_share`` (percent) and ``minutes_poor``; ``quality`` lists the points."""
    by_id = {r.point_id: r for r in rows}
    lines = report["points"]
    figures = {line["id"]: point_quality(by_id.get(line["id"])) for line in lines}
    for line in lines:
        line.update(figures[line["id"]])
    report["totals"].update(_rollup(list(figures.values())))
    by_level: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        by_level[line["level"]].append(figures[line["id"]])
    for level in report["by_level"]:
        level.update(_rollup(by_level.get(level["level"], [])))
    children: dict[str, list[str]] = defaultdict(list)
    for line in lines:
        if line["parent_id"]:
            children[line["parent_id"]].append(line["id"])
    for parent in report["by_parent"]:
        below, stack = [], [parent["id"]]
        while stack:
            current = stack.pop()
            if current in below:
                continue
            below.append(current)
            stack.extend(children.get(current, ()))
        parent.update(_rollup([figures[i] for i in below if i in figures]))
    report["quality"] = {
        "poor_share_rule": f"poor for at least {POOR_SHARE:.0%} of the time watched",
        "points": [
            {"id": line["id"], "name": line["name"], "level": line["level"], "parent": line["parent"],
             **figures[line["id"]]}
            for line in lines if figures[line["id"]]["watched"]
        ],
    }
