"""Adaptation: which rendition a point's link can carry, from the evidence its receiver reports give.

Each report (the point's receiver reports over at least 0.9 s, media.egress.consumer) says what
fraction of the interval's packets were lost and the interarrival jitter; the round trip comes from
its LSR/DLSR. A link that cannot carry a rendition loses a large share (a bandwidth cap drops what
does not fit) and queues (its round trip grows above the lowest seen on it); a merely lossy link
loses a little, which NACKs repair. The other evidence counts where it can be trusted:

- jitter: it also measures the publisher's link and the transcoder's timing, which a lower rendition
  would not change, so only jitter grown ``BAD_JITTER_MS`` above the link's lowest, together with a
  loss NACKs struggle with (``JITTERY_LOSS``), marks a report congested;
- the browser's receive estimate (REMB, ``estimate``): Chromium's read 5 kbit/s on an uncapped
  loopback link in our tests (its delay-based estimator sees the transcoder's and the relay's send
  timing, which no header extension corrects), so an estimate counts only once it has read at least
  ``REMB_TRUSTED`` of what we send the point; from then on a fresh one under ``REMB_LOW`` of it marks
  the report congested (the estimator sees a queue before packets are lost). It never holds back a
  probe up: an estimate cannot read much above what it is sent, which the probe's padding raises;
- the page's freezes (``page``): a picture frozen ``FROZEN_SHARE`` of a page report's interval,
  ``FROZEN_REPORTS`` reports in a row, takes a point on full to low whatever the network says (a
  decoder that cannot keep up with 720p keeps up with 360p), never to audio only; any such report
  ends a probe and restarts the wait before one. Transport-wide congestion control feedback is not
  read: aiortc does not negotiate it.

So:

- down after ``BAD_REPORTS`` reports in a row with loss of ``BAD_LOSS`` or more, queueing or a
  round trip beyond its bound (``SEVERE_REPORTS`` with ``SEVERE_LOSS``): to the low rendition if
  what the link delivered carries it (``low_need``; see ``_capacity``), else to audio only;
- up one rendition after ``wait`` seconds without such a report, once a probe says the link carries
  it: the point keeps its rendition while padding (its own packets again, over RTX) fills the
  difference to the next one's rate for ``PAD_SECONDS``; a congested report meanwhile ends the
  probe, nothing switched and the picture kept. Where there is no padding (no RTX, or the next
  rendition's rate is not known yet) the switch itself is the probe. The consumer ends padding
  sooner when the point's NACKs show it losing packets (``padding_failed``);
- a probe that fails (padding congested, or the rendition lost within ``PROBE_SECONDS`` of going up)
  doubles ``wait`` (up to ``MAX_WAIT``) so a link at its limit does not flap; a rendition held past
  ``PROBE_SECONDS`` resets it;
- reports just after a switch describe the rendition before it and are skipped (``SETTLE``).

Audio-only links are judged by the audio's reports. The point's audio is never touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable

LEVELS = ("audio", "low", "full")
BAD_LOSS = 0.10  # fraction lost in a report: more than NACKs repair in time
SEVERE_LOSS = 0.25
BAD_QUEUE_MS = 300.0  # round trip above the link's lowest: a standing queue
BAD_RTT_MS = 1500.0
BAD_REPORTS = 3
SEVERE_REPORTS = 2
FIRST_WAIT = 8.0  # seconds of good reports before probing up
MAX_WAIT = 20.0
PROBE_SECONDS = 10.0  # a rendition lost within this after a probe up: the probe failed
PAD_SECONDS = 2.5  # a padding probe: about two receiver reports' worth
REMB_FRESH = 3.0  # seconds a REMB counts (browsers send one about every second)
REMB_TRUSTED = 0.8  # an estimate counts once it has read this share of the video we send the point
REMB_LOW = 0.6  # ... then one under this share of it marks a report congested
BAD_JITTER_MS = 50.0  # jitter above the link's lowest: a queue building
JITTERY_LOSS = 0.05  # the loss that, with such jitter, marks a report congested
FROZEN_SHARE = 0.2  # a page report's interval frozen this share of its time
FROZEN_REPORTS = 2  # ... this many reports in a row (about 10 s): down from full to low
SETTLE = 4.0  # seconds after a switch whose reports are about the old rendition (and its queue)


class Adaptation:
    def __init__(
        self, choose: Callable[[str], None], low_need: float = 400_000, clock: Callable[[], float] = time.monotonic,
        pad: Callable[[float], bool] | None = None,
    ) -> None:
        """``choose(rendition)`` is called on every decision (media.egress.consumer.Consumer.adapt);
        ``low_need``: bit/s a link must have delivered to be given the low rendition (it averages
        ~450 kbit/s with the audio, and the estimate from a congested interval runs low);
        ``pad(bps)`` starts probe padding at that rate (0: stops it) and says whether it can."""
        self.choose = choose
        self.pad = pad
        self.rates: dict[str, float] = {}  # level -> the video bit/s last sent on it
        self.padding_since: float | None = None
        self.min_rtt = float("inf")  # ms: the link's round trip without a queue
        self.remb: tuple[float, float] | None = None  # (bit/s, when): the point's latest receive estimate
        self.remb_trusted = False  # an estimate has read what we send: later ones are evidence
        self.min_jitter = float("inf")  # ms: the link's interarrival jitter without a queue
        self.frozen = 0  # page reports in a row with the picture frozen
        self.low_need = low_need
        self.capacity: float | None = None  # bit/s the link delivered, at the last congestion
        self._delivered: list[float] = []  # bit/s delivered in each report of the current congested run
        self._measured = False  # the run's figures are what reached the point, by its own counters
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
               sent_bps: float | None = None, delivered_bps: float | None = None) -> None:
        """One report about the point's ``kind`` stream; ``sent_bps``: what we sent that stream over
        the report's interval; ``delivered_bps``: what reached the point (default: what we sent less
        the share lost; while a link's queue grows, more was sent than the point has yet seen)."""
        if kind != ("audio" if self.level == "audio" else "video"):
            return
        now = self.clock()
        if now < self.settle_until:
            return
        if rtt_ms is not None:
            self.min_rtt = min(self.min_rtt, rtt_ms)
        if jitter_ms is not None:
            self.min_jitter = min(self.min_jitter, jitter_ms)
        congested = fraction_lost >= BAD_LOSS or (
            rtt_ms is not None and (rtt_ms > BAD_RTT_MS or rtt_ms - self.min_rtt > BAD_QUEUE_MS)) or (
            jitter_ms is not None and jitter_ms - self.min_jitter > BAD_JITTER_MS and fraction_lost >= JITTERY_LOSS
        ) or (kind == "video" and self._estimate_low(sent_bps, now))
        if self.padding_since is not None:
            self._padded(congested, now)
            return
        if sent_bps and kind == "video":
            self.rates[self.level] = sent_bps
        self.severe = self.severe + 1 if fraction_lost >= SEVERE_LOSS else 0
        self.bad = self.bad + 1 if congested else 0
        if not congested:
            self._delivered.clear()
        elif delivered_bps is not None or sent_bps:
            self._delivered.append(delivered_bps if delivered_bps is not None else sent_bps * (1 - fraction_lost))
            self._measured = delivered_bps is not None
        if self.level != "audio" and (self.severe >= SEVERE_REPORTS or self.bad >= BAD_REPORTS):
            self.capacity = self._capacity()
            if self.level == "full" and (self.capacity is None or self.capacity >= self.low_need):
                self._down("low", now)
            else:
                self._down("audio", now)
        elif congested:
            self.good_since = now
        elif self.level != "full" and now - self.good_since >= self.wait:
            up = LEVELS[LEVELS.index(self.level) + 1]
            extra = self.rates.get(up, 0.0) - self.rates.get(self.level, 0.0)
            if self.pad is not None and extra > 0 and self.pad(extra):
                self.padding_since = now
            else:
                self._switch(up, now)
                self.probed_at = now
        elif self.probed_at is not None and now - self.probed_at >= PROBE_SECONDS:
            self.probed_at = None  # the probe held
            self.wait = FIRST_WAIT

    def stats(self) -> dict:
        """Why the point is where it is: for the media stats and a failing test's message."""
        now = self.clock()
        return {"level": self.level, "wait": self.wait, "bad": self.bad, "switches": self.switches,
                "padding": self.padding_since is not None, "capacity": self.capacity,
                "rates": {k: round(v) for k, v in self.rates.items()},
                "remb": self.remb[0] if self.remb is not None and now - self.remb[1] < REMB_FRESH else None,
                "remb_trusted": self.remb_trusted, "frozen": self.frozen,
                "min_jitter": None if self.min_jitter == float("inf") else self.min_jitter,
                "min_rtt": None if self.min_rtt == float("inf") else self.min_rtt,
                "good_for": round(now - self.good_since, 1)}

    def estimate(self, bps: float) -> None:
        """The point's receive-side bandwidth estimate (REMB): evidence once trusted (``_estimate_low``)."""
        self.remb = (bps, self.clock())

    def _estimate_low(self, sent_bps: float | None, now: float) -> bool:
        """Whether a fresh, trusted estimate reads under ``REMB_LOW`` of the video sent over the report's
        interval; an estimate that reads ``REMB_TRUSTED`` of it makes later ones trusted."""
        if self.remb is None or not sent_bps or now - self.remb[1] >= REMB_FRESH or self.padding_since is not None:
            return False
        if self.remb[0] >= REMB_TRUSTED * sent_bps:
            self.remb_trusted = True
        return self.remb_trusted and self.remb[0] < REMB_LOW * sent_bps

    def page(self, frozen_share: float) -> None:
        """What the point's page reports (about every 5 s): the share of its interval the picture was
        frozen while video was due. See the module's docstring."""
        now = self.clock()
        if now < self.settle_until or self.level == "audio":
            return
        if frozen_share < FROZEN_SHARE:
            self.frozen = 0
            return
        self.frozen += 1
        self.good_since = now
        if self.padding_since is not None:
            self.padding_failed()
        elif self.level == "full" and self.frozen >= FROZEN_REPORTS:
            self._down("low", now)

    def _padded(self, congested: bool, now: float) -> None:
        """A report during a padding probe: congestion ends it (the wait doubles), a clean
        ``PAD_SECONDS`` takes the point up."""
        if not congested and now - self.padding_since < PAD_SECONDS:  # type: ignore[operator]
            return
        if congested:
            self.padding_failed()
            return
        self.padding_since = None
        self.pad(0)  # type: ignore[misc]
        self._switch(LEVELS[LEVELS.index(self.level) + 1], now)
        self.probed_at = now

    def padding_failed(self) -> None:
        """The link did not carry the padding (a congested report, or the point's NACKs said so
        first): it stops, the wait doubles, and reports wait for the link's queue to drain."""
        if self.padding_since is None:
            return
        now = self.clock()
        self.padding_since = None
        self.pad(0)  # type: ignore[misc]
        self.wait = min(self.wait * 2, MAX_WAIT)
        self.bad = self.severe = 0
        self._delivered.clear()
        self.good_since = now
        self.settle_until = now + SETTLE

    def _capacity(self) -> float | None:
        """What the congested run says the link carries: the mean of what reached the point (the
        link's rate bounds each interval; the mean evens out where reports fall); from what we sent
        less the share lost, the run's worst (the first interval after a cap is partly absorbed by
        the link's queue, which then looks like capacity)."""
        if not self._delivered:
            return None
        return sum(self._delivered) / len(self._delivered) if self._measured else min(self._delivered)

    def _down(self, level: str, now: float) -> None:
        if self.probed_at is not None and now - self.probed_at < PROBE_SECONDS:
            self.wait = min(self.wait * 2, MAX_WAIT)
        self.probed_at = None
        self._switch(level, now)

    def _switch(self, level: str, now: float) -> None:
        self.level = level
        self.bad = self.severe = self.frozen = 0
        self._delivered.clear()
        self.good_since = now
        self.settle_until = now + SETTLE
        self.switches += 1
        self.choose(level)
