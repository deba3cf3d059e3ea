"""Bar charts drawn by the server as SVG, for the dashboard and the printable report: no charting
library in the page, and a printed report looks the same as the screen."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

SERIES_COLOURS = ("#1f6fb2", "#f0a202", "#2e9e5b", "#c0392b", "#7d3c98", "#16a085", "#7f8c8d", "#d35400")
BAR = 12
GAP = 10
LABEL_WIDTH = 170
PLOT_WIDTH = 360
LEGEND_HEIGHT = 22


def _text(x: float, y: float, content: str, anchor: str = "start", size: int = 11) -> str:
    return (f'<text x="{x:.0f}" y="{y:.0f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-family="sans-serif">{escape(content)}</text>')


def _legend(names: Sequence[str], y: float) -> str:
    parts, x = [], LABEL_WIDTH
    for n, name in enumerate(names):
        colour = SERIES_COLOURS[n % len(SERIES_COLOURS)]
        parts.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{colour}"/>')
        parts.append(_text(x + 14, y, name))
        x += 24 + 7 * len(name)
    return "".join(parts)


def grouped_bars(
    title: str, categories: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]],
    maximum: float = 100.0, unit: str = "%",
) -> str:
    """One group of horizontal bars per category, one bar per series (a value of None draws none)."""
    group = len(series) * BAR + GAP
    height = 30 + LEGEND_HEIGHT + group * max(1, len(categories))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{LABEL_WIDTH + PLOT_WIDTH + 60}" '
        f'height="{height}" viewBox="0 0 {LABEL_WIDTH + PLOT_WIDTH + 60} {height}">',
        f"<title>{escape(title)}</title>",
        _text(4, 16, title, size=13),
        _legend([name for name, _ in series], 16 + LEGEND_HEIGHT - 4),
    ]
    top = 30 + LEGEND_HEIGHT
    for c, category in enumerate(categories):
        y0 = top + c * group
        parts.append(_text(LABEL_WIDTH - 6, y0 + len(series) * BAR / 2 + 4, category, anchor="end"))
        for s, (_, values) in enumerate(series):
            value = values[c]
            if value is None:
                continue
            width = PLOT_WIDTH * min(max(value, 0.0), maximum) / maximum if maximum else 0
            y = y0 + s * BAR
            colour = SERIES_COLOURS[s % len(SERIES_COLOURS)]
            parts.append(f'<rect x="{LABEL_WIDTH}" y="{y}" width="{width:.1f}" height="{BAR - 2}" fill="{colour}">'
                         f"<title>{escape(category)}: {value:g}{unit}</title></rect>")
            parts.append(_text(LABEL_WIDTH + width + 4, y + BAR - 3, f"{value:g}{unit}", size=10))
    parts.append(f'<line x1="{LABEL_WIDTH}" y1="{top - 4}" x2="{LABEL_WIDTH}" y2="{height}" stroke="#555"/>')
    parts.append("</svg>")
    return "".join(parts)


def rate_colour(value: float | None) -> str:
    """Red (0 %) through amber to green (100 %); grey when there is nothing to rate."""
    if value is None:
        return "#bbbbbb"
    hue = 120 * min(max(value, 0.0), 100.0) / 100
    return f"hsl({hue:.0f}, 65%, 72%)"


def participation_chart(lines: Sequence[dict]) -> str:
    """Attended, made up by replay and submitted, as shares of members, per line (a district)."""
    return grouped_bars(
        "Tham dự, học bù qua ghi hình, nộp bài thu hoạch (% đảng viên)",
        [line["name"] for line in lines],
        [
            ("Tham dự", [line["subtree"]["attended_rate"] for line in lines]),
            ("Học bù (ghi hình)", [line["subtree"]["replay_rate"] for line in lines]),
            ("Đã nộp bài", [line["subtree"]["submitted_rate"] for line in lines]),
        ],
    )


def grades_chart(lines: Sequence[dict], scale: Sequence[str]) -> str:
    """How many essays got each grade, per line (a district)."""
    counts = [[line["subtree"]["grades"].get(g, 0) for line in lines] for g in scale]
    highest = max((v for row in counts for v in row), default=0)
    return grouped_bars(
        "Xếp loại bài thu hoạch (số bài)",
        [line["name"] for line in lines],
        [(g, [float(v) for v in row]) for g, row in zip(scale, counts)],
        maximum=float(max(highest, 1)),
        unit="",
    )


def rate_tree(points: Sequence[dict], key: str = "submitted_rate") -> str:
    """The province as a nested list, each point coloured by ``key`` of its subtree: the map-like
    view of where the study lags."""
    children: dict[str | None, list[dict]] = {}
    ids = {p["id"] for p in points}
    for p in points:
        children.setdefault(p["parent_id"] if p["parent_id"] in ids else None, []).append(p)

    def branch(parent: str | None) -> str:
        items = []
        for p in sorted(children.get(parent, []), key=lambda p: p["name"]):
            value = p["subtree"][key]
            shown = "–" if value is None else f"{value:g}%"
            items.append(
                f'<li><span class="rate" style="background:{rate_colour(value)}">'
                f'{escape(p["name"])} · {shown} ({p["subtree"]["submitted"]}/{p["subtree"]["members"]})</span>'
                f"{branch(p['id'])}</li>"
            )
        return f"<ul>{''.join(items)}</ul>" if items else ""

    return f'<div class="rate-tree">{branch(None)}</div>'
