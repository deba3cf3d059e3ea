"""Adaptation: which rendition a point's link can carry, from the evidence its receiver reports give.

Each receiver report (about one a second) says what fraction of the last interval's packets were
lost and the interarrival jitter; the round trip comes from its LSR/DLSR. A link that cannot carry
a rendition loses a large share (a bandwidth cap drops what does not fit) and queues (jitter and
round trip grow); a merely lossy link loses a little, which NACKs repair. So:

- down after ``BAD_REPORTS`` reports in a row with loss of ``BAD_LOSS`` or more, or jitter or
  round trip beyond their bounds (``SEVERE_REPORTS`` with ``SEVERE_LOSS``): to the low rendition
  if what the link delivered (the rate we sent times the share not lost) carries it
  (``low_need``), else to audio only;
- up one rendition (a probe) after ``wait`` seconds without such a report; a probe that fails
  within ``PROBE_SECONDS`` doubles ``wait`` (up to ``MAX_WAIT``) so a link at its limit does not
  flap; a rendition held past ``PROBE_SECONDS`` resets it;
- reports just after a switch describe the rendition before it and are skipped (``SETTLE``).

Audio-only links are judged by the audio's reports. The point's audio is never touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable

LEVELS = ("audio", "low", "full")
BAD_LOSS = 0.10  # fraction lost in a report: more than NACKs repair in time
SEVERE_LOSS = 0.25
BAD_JITTER_MS = 120.0
BAD_RTT_MS = 1500.0
BAD_REPORTS = 3
SEVERE_REPORTS = 2
FIRST_WAIT = 8.0  # seconds of good reports before probing up
MAX_WAIT = 20.0
PROBE_SECONDS = 10.0  # a rendition lost within this after a probe up: the probe failed
SETTLE = 4.0  # seconds after a switch whose reports are about the old rendition (and its queue)


class Adaptation:
    def __init__(
        self, choose: Callable[[str], None], low_need: float = 400_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """``choose(rendition)`` is called on every decision (media.egress.consumer.Consumer.adapt);
        ``low_need``: bit/s a link must have delivered to be given the low rendition (it averages
        ~450 kbit/s with the audio, and the estimate from a congested interval runs low)."""
        self.choose = choose
        self.low_need = low_need
        self.capacity: float | None = None  # bit/s the link delivered, at the last congestion
        self.clock = clock
        self.level = "full"
        self.wait = FIRST_WAIT
        self.bad = 0
        self.severe = 0
        now = clock()
        self.good_since = now
        self.settle_until = now
        self.probed_at: float | None = None
        self.switches = 0

    def report(self, kind: str, fraction_lost: float, jitter_ms: float | None = None, rtt_ms: float | None = None,
               sent_bps: float | None = None) -> None:
        """One receiver report block about the point's ``kind`` stream; ``sent_bps``: what we sent
        that stream over the report's interval."""
        if kind != ("audio" if self.level == "audio" else "video"):
            return
        now = self.clock()
        if now < self.settle_until:
            return
        congested = (fraction_lost >= BAD_LOSS or (jitter_ms is not None and jitter_ms > BAD_JITTER_MS)
                     or (rtt_ms is not None and rtt_ms > BAD_RTT_MS))
        self.severe = self.severe + 1 if fraction_lost >= SEVERE_LOSS else 0
        self.bad = self.bad + 1 if congested else 0
        if self.level != "audio" and (self.severe >= SEVERE_REPORTS or self.bad >= BAD_REPORTS):
            self.capacity = sent_bps * (1 - fraction_lost) if sent_bps else None
            if self.level == "full" and (self.capacity is None or self.capacity >= self.low_need):
                self._down("low", now)
            else:
                self._down("audio", now)
        elif congested:
            self.good_since = now
        elif self.level != "full" and now - self.good_since >= self.wait:
            self._switch(LEVELS[LEVELS.index(self.level) + 1], now)
            self.probed_at = now
        elif self.probed_at is not None and now - self.probed_at >= PROBE_SECONDS:
            self.probed_at = None  # the probe held
            self.wait = FIRST_WAIT

    def _down(self, level: str, now: float) -> None:
        if self.probed_at is not None and now - self.probed_at < PROBE_SECONDS:
            self.wait = min(self.wait * 2, MAX_WAIT)
        self.probed_at = None
        self._switch(level, now)

    def _switch(self, level: str, now: float) -> None:
        self.level = level
        self.bad = self.severe = 0
        self.good_since = now
        self.settle_until = now + SETTLE
        self.switches += 1
        self.choose(level)
