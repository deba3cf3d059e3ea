"""What a point's page reports of its own playback (``quality.report`` over the WebSocket, every
5 s): checked, then turned into rates between two reports of the same WHEP session.

The page's ``getStats()`` counters only grow within a session; a new session (or counters that went
back: the page reloaded) starts again from its first report. ``frozen_since`` is when the page last
decoded a new frame while the hall was live and video was due: browsers count a freeze only once it
has ended, so a picture frozen right now shows as frames that stop advancing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

REPORT_VERSION = 1
RENDITIONS = ("full", "low", "audio")
COUNTERS = ("frames_decoded", "frames_dropped", "freeze_count", "total_freeze_duration")
GAUGES = ("jitter_buffer_delay_ms", "available_incoming_bitrate")
MAX_VALUE = 1e12


class ReportRefused(ValueError):
    """A malformed report: the reason goes back to the page (422)."""


def _number(message: dict[str, Any], name: str) -> float | None:
    value = message.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= MAX_VALUE:
        raise ReportRefused(f"{name} must be a number from 0 to {MAX_VALUE:.0e}, or null")
    return float(value)


@dataclass
class PageReport:
    session_id: str | None
    rendition: str | None
    values: dict[str, float | None]


def parse_report(message: dict[str, Any]) -> PageReport:
    """The report's fields, checked (``ReportRefused`` says what is wrong)."""
    version = message.get("v", REPORT_VERSION)
    if version != REPORT_VERSION:
        raise ReportRefused(f"unknown quality.report version {version!r} (this server reads {REPORT_VERSION})")
    session_id = message.get("session_id")
    if session_id is not None and (not isinstance(session_id, str) or not 1 <= len(session_id) <= 64):
        raise ReportRefused("session_id must be the page's WHEP session id, or null")
    rendition = message.get("rendition")
    if rendition is not None and rendition not in RENDITIONS:
        raise ReportRefused(f"rendition must be one of {', '.join(RENDITIONS)}, or null")
    return PageReport(session_id, rendition, {name: _number(message, name) for name in (*COUNTERS, *GAUGES)})


@dataclass
class PageFigures:
    """The figures one report gives, compared with the report before it."""

    at: float
    fps: float | None = None
    frames_dropped_percent: float | None = None
    freeze_percent: float | None = None
    freezes: int = 0  # freezes that ended since the previous report
    freeze_seconds: float = 0.0
    jitter_buffer_ms: float | None = None
    available_kbps: float | None = None
    frozen_share: float | None = None  # of the interval, the picture frozen (ended freezes or the current one)


@dataclass
class PageTracker:
    """One point's page: its last report, and since when its picture has not moved."""

    last: PageReport | None = None
    last_at: float = 0.0
    frozen_since: float | None = None
    figures: PageFigures | None = None

    def update(self, report: PageReport, now: float, video_due: bool) -> PageFigures:
        """Take ``report`` (received at ``now``); ``video_due``: the hall is live and the page's
        rendition carries video, so frames should advance."""
        figures = PageFigures(at=now, jitter_buffer_ms=report.values["jitter_buffer_delay_ms"])
        bitrate = report.values["available_incoming_bitrate"]
        figures.available_kbps = round(bitrate / 1000, 1) if bitrate is not None else None
        before, seconds = self.last, now - self.last_at
        same = before is not None and before.session_id == report.session_id and seconds > 0 and all(
            (report.values[c] or 0) >= (before.values[c] or 0) for c in COUNTERS
        )
        if same:
            assert before is not None
            delta = {c: (report.values[c] or 0) - (before.values[c] or 0) for c in COUNTERS}
            if report.values["frames_decoded"] is not None:
                figures.fps = round(delta["frames_decoded"] / seconds, 1)
                shown = delta["frames_decoded"] + delta["frames_dropped"]
                figures.frames_dropped_percent = round(delta["frames_dropped"] * 100 / shown, 1) if shown else 0.0
            figures.freezes = int(delta["freeze_count"])
            figures.freeze_seconds = round(delta["total_freeze_duration"], 2)
            figures.freeze_percent = round(min(100.0, delta["total_freeze_duration"] * 100 / seconds), 1)
            if video_due and report.values["frames_decoded"] is not None and delta["frames_decoded"] == 0:
                self.frozen_since = self.frozen_since or self.last_at
            else:
                self.frozen_since = None
            if video_due:
                current = min(seconds, now - self.frozen_since) if self.frozen_since is not None else 0.0
                figures.frozen_share = round(min(1.0, max(delta["total_freeze_duration"], current) / seconds), 3)
        else:
            self.frozen_since = None
        self.last, self.last_at, self.figures = report, now, figures
        return figures

    def frozen_for(self, now: float, video_due: bool) -> float:
        """Seconds the picture has not moved (0 when it moves, or no video is due)."""
        if not video_due or self.frozen_since is None:
            return 0.0
        return now - self.frozen_since
