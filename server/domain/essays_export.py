"""The study roll-up as CSV tables: per point (own members), per district and province (their
subtrees), the members who have not submitted, and every essay with its grade."""

from __future__ import annotations

from collections.abc import Sequence

from server.db.models import Essay, EssayGrade
from server.domain.csvio import write_csv
from server.domain.essays_rollup import MemberState
from server.domain.grading_scope import PointTree

TABLES = ("points", "districts", "not_submitted", "essays")
COUNT_COLUMNS = ("members", "attended", "replay", "submitted", "on_time", "late", "graded")
ATTENDANCE_LABELS = {"live": "trực tiếp", "point": "tại điểm cầu", "replay": "học bù (ghi hình)", "absent": "vắng"}


def _count_rows(lines: Sequence[dict], part: str, scale: Sequence[str]) -> list[list]:
    return [
        [line["name"], line["level"], line["district"], *(line[part][c] for c in COUNT_COLUMNS),
         line[part]["submitted_rate"], *(line[part]["grades"].get(g, 0) for g in scale)]
        for line in lines
    ]


def rollup_csv(rollup: dict, table: str) -> str:
    """One of the roll-up's tables (``TABLES`` but ``essays``)."""
    scale = rollup["scale"]
    counts_header = ["name", "level", "district", *COUNT_COLUMNS, "submitted_percent", *scale]
    if table == "points":
        rows = [[*row, line["visits"]["count"], line["visits"]["mean_rating"] or ""]
                for row, line in zip(_count_rows(rollup["points"], "own", scale), rollup["points"])]
        return write_csv([*counts_header, "supervision_visits", "mean_rating"], rows)
    if table == "districts":
        lines = [*rollup["province"], *rollup["districts"]]
        return write_csv(counts_header, _count_rows(lines, "subtree", scale))
    if table == "not_submitted":
        return write_csv(
            ["member", "unit", "point", "district", "attendance"],
            [[m["name"], m["unit"], m["point"], m["district"], ATTENDANCE_LABELS[m["attendance"]]]
             for m in rollup["not_submitted"]],
        )
    raise ValueError(f"table must be one of {', '.join(TABLES)}")


def essays_csv(
    states: Sequence[MemberState], tree: PointTree, essays: dict[str, Essay], grades: dict[str, EssayGrade]
) -> str:
    """Every submitted essay: member, point, district, when, late, who sent it, its current grade."""
    rows = []
    for s in states:
        essay = essays.get(s.id)
        if essay is None:
            continue
        grade = grades.get(essay.id)
        district = tree.ancestor_at(s.point_id, "district")
        rows.append([
            s.name, s.unit, tree.name(s.point_id), district.name if district else "",
            essay.submitted_at.isoformat(), "yes" if essay.late else "no", essay.words, essay.filename or "",
            essay.submitted_by, essay.submitted_by_name, essay.revisions,
            grade.grade if grade else "", grade.grader_name if grade else "",
            grade.graded_at.isoformat() if grade else "", grade.comment if grade else "",
        ])
    return write_csv(
        ["member", "unit", "point", "district", "submitted_at", "late", "words", "file", "submitted_by",
         "submitted_by_name", "revisions", "grade", "grader", "graded_at", "comment"],
        rows,
    )
