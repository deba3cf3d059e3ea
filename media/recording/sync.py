"""A/V alignment of one publisher: each source's RTP clock tied to a wall clock both kinds share.

A sender report maps a source's RTP timestamp to the sender's wall clock, the same clock for the
publisher's audio and video, so the recorder places every frame at its sender wall-clock time and the
two kinds line up as they were captured. Without sender reports (or with implausible ones) both kinds
are tied to the arrival time of their latest packet instead. Read the sources on the event loop,
where the Router updates them (a report's two fields are set one after the other).
"""

from __future__ import annotations

from dataclasses import dataclass

from media.core.source import SourceStream
from media.recording.timestamps import signed32

MAX_SKEW = 5.0  # seconds the kinds' reports may disagree with their arrival before they are distrusted


@dataclass(frozen=True)
class SourceClock:
    """The source's RTP timestamp ``rtp`` was (or was sent) at wall-clock ``wall`` seconds."""

    rtp: int
    wall: float
    rate: int

    def at(self, rtp: int) -> float:
        return self.wall + signed32(rtp - self.rtp) / self.rate


def report_clock(source: SourceStream) -> SourceClock | None:
    if source.sr_ntp is None:
        return None
    return SourceClock(source.sr_rtp, source.sr_ntp, source.clock_rate)


def arrival_clock(source: SourceStream) -> SourceClock | None:
    if not source.packets:
        return None
    return SourceClock(source.last_ts, source.last_arrival, source.clock_rate)


def sender_clocks(sources: dict[str, SourceStream]) -> dict[str, SourceClock] | None:
    """Every kind's clock from its sender reports; ``None`` until each kind has sent one, or when
    they place the kinds more than :data:`MAX_SKEW` apart from how their packets arrive."""
    clocks, skews = {}, []
    for kind, source in sources.items():
        report, arrival = report_clock(source), arrival_clock(source)
        if report is None or arrival is None:
            return None
        clocks[kind] = report
        skews.append(report.at(arrival.rtp) - arrival.wall)
    if max(skews) - min(skews) >= MAX_SKEW:
        return None
    return clocks


def arrival_clocks(sources: dict[str, SourceStream]) -> dict[str, SourceClock]:
    """The clocks of the kinds that have sent packets, by arrival (the fallback)."""
    clocks = {kind: arrival_clock(source) for kind, source in sources.items()}
    return {kind: clock for kind, clock in clocks.items() if clock is not None}
