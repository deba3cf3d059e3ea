"""The proposals to send up: a CSV of every proposal and a printable HTML report.

The report opens with the charts (attendance, make-up by replay, submission and grades per district)
and the province tree coloured by submission rate, then gives one page per district: its figures,
its proposals grouped by field, and the supervision visits to its points.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from html import escape

from server.db.models import SupervisionVisit
from server.domain.csvio import write_csv
from server.domain.essays_charts import grades_chart, participation_chart, rate_tree
from server.domain.grading_scope import PointTree
from server.domain.proposals import FIELDS, NO_DISTRICT, ProposalLine

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.2em; margin-top: 0; } h3 { font-size: 1.05em; }
.page { break-before: page; page-break-before: always; }
table { border-collapse: collapse; width: 100%; margin: .5em 0 1em; font-size: .9em; }
th, td { border: 1px solid #999; padding: 3px 6px; text-align: left; vertical-align: top; }
.rate-tree ul { list-style: none; padding-left: 1.2em; margin: .2em 0; }
.rate-tree .rate { display: inline-block; padding: 1px 6px; border-radius: 3px; margin: 1px 0; }
.muted { color: #666; font-size: .9em; }
svg { vertical-align: top; margin: .5em 1em .5em 0; }
"""


def proposals_csv(lines: Sequence[ProposalLine]) -> str:
    return write_csv(
        ["field", "title", "detail", "member", "point", "district", "duplicates_merged", "forwarded_at", "forwarded_to", "id"],
        [[p.field_label, p.title, p.detail, p.member, p.point, p.district, p.duplicates, p.forwarded_at or "",
          p.forwarded_to, p.id] for p in lines],
    )


def _counts_table(lines: Sequence[dict], scale: Sequence[str]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in
                   ("Đơn vị", "Đảng viên", "Tham dự", "Học bù", "Đã nộp", "Đúng hạn", "Nộp muộn", "Đã chấm", *scale))
    rows = []
    for line in lines:
        c = line["subtree"]
        cells = [line["name"], c["members"], c["attended"], c["replay"], c["submitted"], c["on_time"], c["late"],
                 c["graded"], *(c["grades"].get(g, 0) for g in scale)]
        rows.append("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _proposals_by_field(lines: Sequence[ProposalLine]) -> str:
    by_field: dict[str, list[ProposalLine]] = defaultdict(list)
    for p in lines:
        by_field[p.field].append(p)
    if not by_field:
        return '<p class="muted">Chưa có đề xuất.</p>'
    parts = []
    for key in [k for k in FIELDS if k in by_field]:
        items = by_field[key]
        rows = "".join(
            f"<tr><td>{escape(p.title)}</td><td>{escape(p.detail)}</td><td>{escape(p.member)}</td>"
            f"<td>{escape(p.point)}</td><td>{p.duplicates or ''}</td>"
            f"<td>{'✓ ' + escape(p.forwarded_to) if p.forwarded_at else ''}</td></tr>"
            for p in items
        )
        parts.append(
            f"<h3>{escape(FIELDS[key])} ({sum(1 + p.duplicates for p in items)})</h3><table><tr><th>Đề xuất</th>"
            f"<th>Nội dung</th><th>Người đề xuất</th><th>Điểm cầu</th><th>Trùng (đã gộp)</th><th>Đã chuyển</th></tr>"
            f"{rows}</table>"
        )
    return "".join(parts)


def _visits_table(visits: Sequence[SupervisionVisit], tree: PointTree) -> str:
    if not visits:
        return '<p class="muted">Chưa có đoàn giám sát đến.</p>'
    rows = "".join(
        f"<tr><td>{escape(tree.name(v.point_id))}</td><td>{escape(v.visited_at.strftime('%d/%m/%Y %H:%M'))} UTC</td>"
        f"<td>{escape(v.supervisor)}</td><td>{v.rating}/5</td><td>{escape(v.note)}</td></tr>"
        for v in visits
    )
    return (f"<table><tr><th>Điểm cầu</th><th>Thời gian</th><th>Giám sát viên</th><th>Đánh giá</th>"
            f"<th>Ghi chú</th></tr>{rows}</table>")


def report_html(rollup: dict, lines: Sequence[ProposalLine], visits: Sequence[SupervisionVisit], tree: PointTree) -> str:
    title = rollup["conference"]["title"]
    districts = rollup["districts"]
    scale = rollup["scale"]
    pages = [
        f"<h1>Tổng hợp bài thu hoạch và đề xuất — {escape(title)}</h1>",
        f'<p class="muted">Lập lúc {escape(rollup["generated_at"][:16].replace("T", " "))} UTC. '
        f'{rollup["totals"]["submitted"]}/{rollup["totals"]["members"]} đảng viên đã nộp bài; '
        f"{sum(1 + p.duplicates for p in lines)} đề xuất.</p>",
        _counts_table([*rollup["province"], *districts], scale),
        participation_chart(districts),
        grades_chart(districts, scale),
        "<h2>Tỷ lệ nộp bài theo đơn vị</h2>",
        rate_tree(rollup["points"]),
    ]
    by_district: dict[str, list[ProposalLine]] = defaultdict(list)
    for p in lines:
        by_district[p.district].append(p)
    visits_by_district: dict[str, list[SupervisionVisit]] = defaultdict(list)
    for v in visits:
        d = tree.ancestor_at(v.point_id, "district")
        visits_by_district[d.name if d else NO_DISTRICT].append(v)
    for district in districts:
        name = district["name"]
        pages.append(
            f'<section class="page district"><h2>{escape(name)}</h2>{_counts_table([district], scale)}'
            f"{_proposals_by_field(by_district.pop(name, []))}<h3>Giám sát</h3>"
            f"{_visits_table(visits_by_district.pop(name, []), tree)}</section>"
        )
    rest = [p for ps in by_district.values() for p in ps]
    rest_visits = [v for vs in visits_by_district.values() for v in vs]
    if rest or rest_visits:
        pages.append(f'<section class="page district"><h2>{escape(NO_DISTRICT)}</h2>{_proposals_by_field(rest)}'
                     f"<h3>Giám sát</h3>{_visits_table(rest_visits, tree)}</section>")
    return (f'<!doctype html><html lang="vi"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>{''.join(pages)}</body></html>")
