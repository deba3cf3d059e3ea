"""Time-span arithmetic for attendance: overlapping sessions of one point count once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal

Span = tuple[dt.datetime, dt.datetime]


def merge(spans: Iterable[Span]) -> list[Span]:
    """Union of spans: overlapping or touching spans become one (a WebRTC session and the
    WebSocket of the same point, or a quick reconnect, are not double counted)."""
    merged: list[Span] = []
    for start, end in sorted((s, e) for s, e in spans if e >= s):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def total_seconds(spans: Iterable[Span]) -> float:
    return sum((end - start).total_seconds() for start, end in merge(spans))


def rate(present: int, summoned: int) -> float | None:
    """Attendance rate in percent with one decimal, rounded half up (62,221 / 64,809 -> 96.0)."""
    if summoned <= 0:
        return None
    value = Decimal(present) * 100 / Decimal(summoned)
    return float(value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))
