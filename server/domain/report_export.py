"""The attendance report as CSV tables (for spreadsheets) and a printable HTML page."""

from __future__ import annotations

from html import escape

from server.domain.csvio import write_csv

TABLES = (
    "points", "levels", "parents", "late", "left_early", "never_connected", "replay", "absent", "floor",
    "floor_turns", "quality", "quality_rollup",
)

LEVEL_LABELS = {"province": "Province", "district": "District", "commune": "Commune"}


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}%"


def _rows(report: dict, table: str) -> tuple[list[str], list[list]]:
    if table == "points":
        header = ["name", "level", "parent", "operator", "summoned", "present", "rate", "connected_now",
                  "first_joined_at", "last_left_at", "minutes_connected", "late", "minutes_late",
                  "left_early", "minutes_early", "never_connected", "headcount_reported_at"]
        rows = [
            [p["name"], p["level"], p["parent"], p["operator_name"], p["summoned"], p["present"],
             _pct(p["rate"]), p["connected_now"], p["first_joined_at"] or "", p["last_left_at"] or "",
             p["minutes_connected"], p["late"], p["minutes_late"] or "", p["left_early"],
             p["minutes_early"] or "", p["never_connected"], p["headcount_reported_at"] or ""]
            for p in report["points"]
        ]
    elif table in ("levels", "parents"):
        header = (["level"] if table == "levels" else ["name", "level", "children"]) + [
            "points", "connected", "never_connected", "late", "left_early", "reported", "summoned",
            "present", "rate", "minutes_connected"]
        source = report["by_level"] if table == "levels" else report["by_parent"]
        rows = [
            ([r["level"]] if table == "levels" else [r["name"], r["level"], r["children"]])
            + [r["points"], r["connected"], r["never_connected"], r["late"], r["left_early"],
               r["reported"], r["summoned"], r["present"], _pct(r["rate"]), r["minutes_connected"]]
            for r in source
        ]
        t = report["totals"]
        rows.append(
            (["total"] if table == "levels" else ["total", "", ""])
            + [t["points"], t["connected"], t["never_connected"], t["late"], t["left_early"],
               t["reported"], t["summoned"], t["present"], _pct(t["rate"]), t["minutes_connected"]]
        )
    elif table == "late":
        header = ["name", "level", "first_joined_at", "minutes_late"]
        rows = [[x["name"], x["level"], x["first_joined_at"], x["minutes_late"]] for x in report["late"]]
    elif table == "left_early":
        header = ["name", "level", "last_left_at", "minutes_early"]
        rows = [[x["name"], x["level"], x["last_left_at"], x["minutes_early"]] for x in report["left_early"]]
    elif table == "never_connected":
        header = ["name", "level"]
        rows = [[x["name"], x["level"]] for x in report["never_connected"]]
    elif table == "replay":
        header = ["name", "unit", "point", "minutes_watched", "percent_watched", "views"]
        rows = [
            [x["name"], x["unit"], x["point"], x["minutes_watched"], _pct(x["percent_watched"]), x["views"]]
            for x in report["members"]["replay"]
        ]
    elif table == "absent":
        header = ["name", "unit", "point"]
        rows = [[x["name"], x["unit"], x["point"]] for x in report["members"]["absent_members"]]
    elif table == "floor":  # the points that spoke: how often, how long, on what
        header = ["name", "level", "turns", "minutes", "subjects"]
        rows = [[x["point_name"], x["level"], x["turns"], round(x["seconds"] / 60, 1), " | ".join(x["subjects"])]
                for x in report.get("floor", {}).get("points", [])]
    elif table == "floor_turns":
        header = ["name", "level", "subject", "granted_at", "ended_at", "minutes", "invited", "end_reason"]
        rows = [[x["point_name"], x["level"], x["subject"], x["granted_at"], x["ended_at"] or "",
                 round(x["duration_seconds"] / 60, 1), x["invited"], x["end_reason"] or ""]
                for x in report.get("floor", {}).get("turns", [])]
    elif table == "quality":  # link quality per point that watched
        header = ["name", "level", "parent", "minutes_watched", "minutes_full", "minutes_low", "minutes_audio",
                  "minutes_poor", "freezes", "freeze_seconds", "poor_link"]
        rows = [[x["name"], x["level"], x["parent"], x["minutes_watched"], x["minutes_full"], x["minutes_low"],
                 x["minutes_audio"], x["minutes_poor"], x["freezes"], x["freeze_seconds"], x["poor_link"]]
                for x in report.get("quality", {}).get("points", [])]
    elif table == "quality_rollup":  # the share of points with poor links, by level and by parent
        header = ["name", "level", "points_watched", "poor_links", "poor_share", "minutes_poor"]
        rows = [["", r["level"], r.get("points_watched", 0), r.get("poor_links", 0), _pct(r.get("poor_share")),
                 r.get("minutes_poor", 0.0)] for r in report["by_level"]]
        rows += [[r["name"], r["level"], r.get("points_watched", 0), r.get("poor_links", 0),
                  _pct(r.get("poor_share")), r.get("minutes_poor", 0.0)] for r in report["by_parent"]]
        t = report["totals"]
        rows.append(["total", "", t.get("points_watched", 0), t.get("poor_links", 0), _pct(t.get("poor_share")),
                     t.get("minutes_poor", 0.0)])
    else:
        raise ValueError(f"table must be one of {', '.join(TABLES)}")
    return header, rows


def to_csv(report: dict, table: str = "points") -> str:
    """One table of the report as CSV, with a BOM so Excel shows Vietnamese names correctly."""
    return write_csv(*_rows(report, table))


def _table(title: str, header: list[str], rows: list[list]) -> str:
    if not rows:
        return f"<h2>{escape(title)}</h2><p class=none>None.</p>"
    head = "".join(f"<th>{escape(h.replace('_', ' '))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape('' if v is None else str(v))}</td>" for v in row) + "</tr>"
        for row in rows
    )
    return f"<h2>{escape(title)}</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(report: dict) -> str:
    """A self-contained page meant to be printed (or saved as PDF) after the conference."""
    conf, t = report["conference"], report["totals"]
    m = report["members"]
    sections = [
        _table("By level", *_rows(report, "levels")),
        _table("By parent (the parent and every point below it)", *_rows(report, "parents")),
        _table("Joined late (after the scheduled start + grace)", *_rows(report, "late")),
        _table("Left before the scheduled end", *_rows(report, "left_early")),
        _table("Never connected", *_rows(report, "never_connected")),
        _table("Connection points", *_rows(report, "points")),
        _table("Members who made up by replay", *_rows(report, "replay")),
        _table("The floor: points that spoke", *_rows(report, "floor")),
        _table("The floor: every turn", *_rows(report, "floor_turns")),
        _table("Link quality per point", *_rows(report, "quality")),
        _table("Points with a poor link, by level and by parent", *_rows(report, "quality_rollup")),
    ]
    summary = (
        f"<p class=big><b>{t['present']:,}</b> present of <b>{t['summoned']:,}</b> summoned: "
        f"<b>{_pct(t['rate']) or '-'}</b></p>"
        f"<p>{t['connected']} of {t['points']} points connected; {t['late']} late, "
        f"{t['left_early']} left early, {t['never_connected']} never connected. "
        f"Members: {m['total']} ({m['attended_live']} live, {m['via_point']} at their point, "
        f"{m['made_up_by_replay']} made up by replay, {m['absent']} absent).</p>"
        f"<p class=meta>Scheduled {escape(conf['scheduled_start'] or '-')} to "
        f"{escape(conf['scheduled_end'] or '-')}; grace {report['grace_minutes']} min; "
        f"generated {escape(report['generated_at'])}.</p>"
    )
    if "questions" in report:  # written questions by status; their list is report.csv?table=questions
        q = report["questions"]
        by = ", ".join(f"{n} {s}" for s, n in q["by_status"].items())
        summary += f"<p>Written questions: {q['total']} ({escape(by)}; {q['merged']} merged as duplicates).</p>"
    return (
        "<!doctype html><html lang=vi><meta charset=utf-8>"
        f"<title>Attendance - {escape(conf['title'])}</title>"
        "<style>body{font:13px/1.4 system-ui,sans-serif;margin:2em}h1{font-size:20px}"
        "h2{font-size:15px;margin-top:1.6em;break-after:avoid}table{border-collapse:collapse;width:100%}"
        "th,td{border:1px solid #999;padding:2px 6px;text-align:left}th{background:#eee}"
        "tr{break-inside:avoid}.big{font-size:18px}.meta,.none{color:#555}"
        "@media print{body{margin:0}a{display:none}}</style>"
        f"<h1>Attendance report: {escape(conf['title'])}</h1>{summary}{''.join(sections)}</html>"
    )
