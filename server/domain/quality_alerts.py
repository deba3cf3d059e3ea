"""When a point's trouble becomes an alert for the organisers, and when the alert ends.

Four kinds: ``dropped`` (the point was watching and has had no WHEP session for a few seconds: a
page reconnecting at once is not an alert), ``frozen`` (its page decodes no new frame for more than
5 s while the hall is live and it should get video, or reports a freeze that long), ``poor`` (its
level has been poor for ``poor_seconds``, a minute by default) and ``audio_only`` (it receives no
video, by adaptation or by a pin). An alert starts when its condition starts to hold and ends when
it stops holding; ``conditions`` says which hold, ``PointAlerts`` turns that into starts and ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("dropped", "frozen", "poor", "audio_only")
FROZEN_SECONDS = 5.0
DROP_GRACE_SECONDS = 5.0


def conditions(
    now: float,
    *,
    watching: bool,
    left_at: float | None,
    frozen_for: float,
    poor_for: float,
    poor_seconds: float,
    rendition: str | None,
    pinned: str | None,
) -> dict[str, str]:
    """The alerts whose condition holds now, each with a short reason. ``left_at``: when the
    point's last WHEP session closed (None while it has one, or never had one); ``frozen_for`` and
    ``poor_for``: seconds it has been frozen and poor (0 when it is not)."""
    held: dict[str, str] = {}
    if not watching and left_at is not None and now - left_at >= DROP_GRACE_SECONDS:
        held["dropped"] = f"no WHEP session for {now - left_at:.0f} s"
    if frozen_for > FROZEN_SECONDS:
        held["frozen"] = f"no new frame for {frozen_for:.0f} s"
    if poor_for >= poor_seconds:
        held["poor"] = f"poor for {poor_for:.0f} s"
    if watching and rendition == "audio":
        held["audio_only"] = "pinned" if pinned == "audio" else "adaptation"
    return held


@dataclass
class PointAlerts:
    """The alerts open for one point: kind -> alert id."""

    active: dict[str, str] = field(default_factory=dict)

    def changes(self, held: dict[str, str]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(alerts to start: kind and reason; alerts to end: kind and id). The caller records
        each start's id in ``active`` and removes the ended ones."""
        started = [(kind, reason) for kind, reason in held.items() if kind not in self.active]
        ended = [(kind, alert_id) for kind, alert_id in self.active.items() if kind not in held]
        return started, ended
