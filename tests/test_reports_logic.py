"""The report arithmetic on hand-made rows: rates, merged spans, late/early/never, rollups, replay."""

from __future__ import annotations

import datetime as dt

from server.db.models import (
    AttendanceSession,
    Conference,
    ConnectionPoint,
    HeadcountReport,
    Member,
    ReplayView,
)
from server.domain.intervals import merge, rate, total_seconds
from server.domain.report_export import to_csv, to_html
from server.domain.reports import build_report

T0 = dt.datetime(2026, 3, 1, 1, 0, tzinfo=dt.UTC)  # 08:00 in Hà Nội


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def test_rate_rounds_half_up_to_one_decimal() -> None:
    assert rate(62_221, 64_809) == 96.0
    assert rate(1, 3) == 33.3
    assert rate(2, 3) == 66.7
    assert rate(1, 8) == 12.5
    assert rate(5, 0) is None
    assert rate(0, 10) == 0.0


def test_overlapping_and_touching_spans_are_merged() -> None:
    spans = [(at(0), at(10)), (at(5), at(20)), (at(20), at(25)), (at(30), at(40)), (at(32), at(35))]
    assert merge(spans) == [(at(0), at(25)), (at(30), at(40))]
    assert total_seconds(spans) == 35 * 60
    assert total_seconds([]) == 0


def _session(point: ConnectionPoint, joined: float, left: float | None, kind: str = "presence") -> AttendanceSession:
    return AttendanceSession(
        conference_id="c", kind=kind, subject_type="point", subject_id=point.id,
        joined_at=at(joined), left_at=at(left) if left is not None else None, last_seen_at=at(joined),
    )


def test_report_classifies_points_and_rolls_up() -> None:
    conf = Conference(id="c", title="Hội nghị", status="ended", scheduled_start=at(0), scheduled_end=at(120))
    province = ConnectionPoint(id="p", conference_id="c", name="Tỉnh", level="province", summoned=100, operator_name="")
    d1 = ConnectionPoint(id="d1", conference_id="c", name="Huyện 1", level="district", parent_id="p", summoned=50, operator_name="")
    d2 = ConnectionPoint(id="d2", conference_id="c", name="Huyện 2", level="district", parent_id="p", summoned=40, operator_name="")
    c1 = ConnectionPoint(id="c1", conference_id="c", name="Xã 1", level="commune", parent_id="d1", summoned=30, operator_name="")
    c2 = ConnectionPoint(id="c2", conference_id="c", name="Xã 2", level="commune", parent_id="d1", summoned=20, operator_name="")
    c3 = ConnectionPoint(id="c3", conference_id="c", name="Xã 3", level="commune", parent_id="d2", summoned=10, operator_name="")
    points = [province, d1, d2, c1, c2, c3]
    sessions = [
        _session(province, -5, 130),  # on time, stays to the end
        _session(province, -4, 60, kind="webrtc"),  # overlaps the presence session: counted once
        _session(d1, 9, 120),  # within the 10-minute grace
        _session(c1, 11, 125),  # late
        _session(c2, 0, 30),  # left early ...
        _session(c2, 40, 90),  # ... came back, left early again
        # d2 never connects, c3 is still connected at "now"
        _session(c3, 1, None),
    ]
    counts = {
        "p": HeadcountReport(point_id="p", present=98, reported_at=at(1)),
        "d1": HeadcountReport(point_id="d1", present=50, reported_at=at(2)),
        "c1": HeadcountReport(point_id="c1", present=27, reported_at=at(12)),
        "c2": HeadcountReport(point_id="c2", present=19, reported_at=at(3)),
        "c3": HeadcountReport(point_id="c3", present=9, reported_at=at(3)),
    }
    members = [
        Member(id="m1", conference_id="c", name="An", unit="Chi bộ 1", point_id=None),
        Member(id="m2", conference_id="c", name="Bình", unit="Chi bộ 2", point_id=None),
        Member(id="m3", conference_id="c", name="Chi", unit="Chi bộ 3", point_id="c1"),
        Member(id="m4", conference_id="c", name="Dũng", unit="Chi bộ 4", point_id="d2"),
        Member(id="m5", conference_id="c", name="Em", unit="Chi bộ 5", point_id=None),
    ]
    views = [
        ReplayView(token_id="t2", view_id="a", subject_type="member", subject_id="m2", seconds_watched=1800, duration_seconds=7200),
        ReplayView(token_id="t2", view_id="b", subject_type="member", subject_id="m2", seconds_watched=1800, duration_seconds=7200),
        ReplayView(token_id="t1", view_id="a", subject_type="member", subject_id="m1", seconds_watched=600, duration_seconds=7200),
    ]
    # Replay make-up counts what the server served (seconds of distinct segments), against 80 % of
    # the recordings; the views the replay page reported are shown but count for nothing: Em's
    # 7200 s claimed would be a full replay, 1000 s served are not.
    views.append(ReplayView(token_id="t5", view_id="a", subject_type="member", subject_id="m5", seconds_watched=7200, duration_seconds=7200))
    served = {"m1": 600.0, "m2": 6000.0, "m5": 1000.0}
    report = build_report(conf, points, sessions, counts, members, {"m1": 3600.0}, views, 10, now=at(150),
                          served=served, recorded_seconds=7200.0, replay_percent=80.0)

    lines = {p["id"]: p for p in report["points"]}
    assert lines["p"]["minutes_connected"] == 135.0 and lines["p"]["connections"] == 1
    assert [x["id"] for x in report["late"]] == ["c1"]
    assert report["late"][0]["minutes_late"] == 11.0
    assert [x["id"] for x in report["left_early"]] == ["c2"]
    assert report["left_early"][0]["minutes_early"] == 30.0
    assert lines["c2"]["minutes_connected"] == 80.0 and lines["c2"]["connections"] == 2
    assert [x["id"] for x in report["never_connected"]] == ["d2"]
    assert lines["c3"]["connected_now"] and not lines["c3"]["left_early"]
    assert lines["c3"]["minutes_connected"] == 149.0
    assert lines["d2"]["present"] == 0 and lines["d2"]["headcount_reported_at"] is None

    totals = report["totals"]
    assert (totals["summoned"], totals["present"], totals["rate"]) == (250, 203, 81.2)
    assert (totals["connected"], totals["never_connected"], totals["reported"]) == (5, 1, 5)
    levels = {r["level"]: r for r in report["by_level"]}
    assert (levels["district"]["summoned"], levels["district"]["present"], levels["district"]["rate"]) == (90, 50, 55.6)
    assert (levels["commune"]["summoned"], levels["commune"]["present"], levels["commune"]["rate"]) == (60, 55, 91.7)
    parents = {r["id"]: r for r in report["by_parent"]}
    assert set(parents) == {"p", "d1", "d2"}
    assert (parents["d1"]["points"], parents["d1"]["summoned"], parents["d1"]["present"]) == (3, 100, 96)
    assert (parents["d2"]["children"], parents["d2"]["summoned"], parents["d2"]["present"]) == (1, 50, 9)
    assert parents["p"]["summoned"] == totals["summoned"]

    m = report["members"]
    assert (m["total"], m["attended_live"], m["via_point"], m["made_up_by_replay"], m["absent"]) == (5, 1, 1, 1, 2)
    [made_up] = m["replay"]
    assert made_up["name"] == "Bình" and made_up["minutes_watched"] == 100.0
    assert made_up["views"] == 2 and made_up["percent_watched"] == 83.3 and made_up["seconds_reported"] == 3600
    assert {x["name"]: x["replay_percent"] for x in m["absent_members"]} == {"Dũng": None, "Em": 13.9}
    # The same rows with a threshold above Bình's share: Bình is absent too.
    strict = build_report(conf, points, sessions, counts, members, {"m1": 3600.0}, views, 10, now=at(150),
                          served=served, recorded_seconds=7200.0, replay_percent=90.0)
    assert (strict["members"]["made_up_by_replay"], strict["members"]["absent"]) == (0, 3)

    csv_text = to_csv(report, "levels")
    assert csv_text.startswith("\ufefflevel,points")
    assert "total,6,5,1,1,1,5,250,203,81.2%" in csv_text
    page = to_html(report)
    assert "Hội nghị" in page and "81.2%" in page and "Bình" in page


def test_no_schedule_means_nobody_is_late_or_early() -> None:
    conf = Conference(id="c", title="t", status="live", scheduled_start=None, scheduled_end=None)
    p = ConnectionPoint(id="p", conference_id="c", name="P", level="province", summoned=0, operator_name="")
    report = build_report(conf, [p], [_session(p, 50, 60)], {}, [], {}, [], 10, now=at(70))
    assert report["late"] == [] and report["left_early"] == [] and report["never_connected"] == []
    assert report["totals"]["rate"] is None
