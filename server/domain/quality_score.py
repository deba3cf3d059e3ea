"""A point's link quality as one score (0-100) and a level (good, fair, poor), from its figures.

A pure function, so the thresholds can be checked exactly. Each figure has a limit up to which it
is good and one from which it is poor; its own score falls from 100 to 80 over the good range,
from 80 to 50 between the limits, and from 50 to 0 beyond (0 at twice the poor limit). The point's
score is the worst figure's score: one bad figure (a link losing a tenth of its packets, or a
picture frozen half the time) is what the hall sees, however good the rest is. The level follows
the score: good from 80, poor at 50 and below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GOOD, FAIR, POOR = "good", "fair", "poor"
LEVELS = (GOOD, FAIR, POOR)
GOOD_FROM = 80.0
POOR_UP_TO = 50.0

# figure -> (good up to, poor from). Loss and jitter from the point's receiver reports; RTT from
# them too (LSR/DLSR); retransmissions (per packet sent) and keyframe requests (per 10 s) as the
# relay answered them; freezes, dropped frames and the decoded frame rate from the page's own getStats().
LIMITS: dict[str, tuple[float, float]] = {
    "loss_percent": (2.0, 8.0),
    "retransmit_percent": (3.0, 10.0),
    "rtt_ms": (300.0, 1000.0),
    "jitter_ms": (30.0, 100.0),
    "keyframe_requests": (1.0, 3.0),
    "freeze_percent": (2.0, 15.0),
    "frames_dropped_percent": (3.0, 15.0),
    "fps_shortfall_percent": (25.0, 60.0),
}
VIDEO_ONLY = ("retransmit_percent", "keyframe_requests", "freeze_percent", "frames_dropped_percent",
              "fps_shortfall_percent")


@dataclass
class Assessment:
    score: int | None  # None: no figures at all
    level: str | None
    reasons: list[str] = field(default_factory=list)  # the figures that kept the score below 80, worst first


def figure_score(name: str, value: float) -> float:
    """One figure's score, 0-100 (100 for a perfect figure)."""
    good, poor = LIMITS[name]
    value = max(0.0, value)
    if value <= good:
        return 100.0 - 20.0 * value / good
    if value < poor:
        return 80.0 - 30.0 * (value - good) / (poor - good)
    return max(0.0, 50.0 - 50.0 * (value - poor) / poor)


def level_of(score: float) -> str:
    if score >= GOOD_FROM:
        return GOOD
    return FAIR if score > POOR_UP_TO else POOR


def assess(figures: dict[str, Any], video_expected: bool = True) -> Assessment:
    """Score ``figures`` (names of ``LIMITS``; others and None are ignored). Without video expected
    (audio only, or nobody publishing) the video figures do not count."""
    scored = []
    for name in LIMITS:
        value = figures.get(name)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if name in VIDEO_ONLY and not video_expected:
            continue
        scored.append((figure_score(name, float(value)), name))
    if not scored:
        return Assessment(None, None)
    scored.sort()
    worst = scored[0][0]
    reasons = [name for s, name in scored if s < GOOD_FROM]
    return Assessment(round(worst), level_of(worst), reasons)


def smoothed(scores: list[int]) -> tuple[int, str]:
    """The score shown for the last samples' raw scores (their mean: one bad sample makes a point
    fair, two in a row make it poor), and its level."""
    mean = sum(scores) / len(scores)
    return round(mean), level_of(mean)


def fps_shortfall(fps: float | None, source_fps: float | None) -> float | None:
    """How far below the source's frame rate the point decodes, in percent (None: unknown).
    Without the source's rate, no frame at all is the whole of it and any frame none."""
    if fps is None:
        return None
    if not source_fps:
        return 100.0 if fps <= 0 else 0.0
    return round(max(0.0, 1.0 - fps / source_fps) * 100.0, 1)
