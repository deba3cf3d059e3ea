"""The rendition policy (media.renditions.adaptation) on a fake clock: what a point's receiver
reports make it choose, and that it does not flap."""

from __future__ import annotations

from media.renditions.adaptation import (
    BAD_JITTER_MS, BAD_QUEUE_MS, FIRST_WAIT, FROZEN_SHARE, MAX_WAIT, PAD_SECONDS, SETTLE, Adaptation,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def policy() -> tuple[Adaptation, Clock, list[str]]:
    clock, chosen = Clock(), []
    return Adaptation(chosen.append, low_need=400_000, clock=clock), clock, chosen


def reports(a: Adaptation, clock: Clock, seconds: float, kind: str = "video", **figures: float) -> None:
    """One report a second for ``seconds``."""
    for _ in range(int(seconds)):
        clock.now += 1
        a.report(kind, figures.get("loss", 0.0), figures.get("jitter", 5.0), figures.get("rtt", 40.0),
                 figures.get("sent"), figures.get("delivered"))


def test_a_clean_link_stays_on_full() -> None:
    a, clock, chosen = policy()
    reports(a, clock, 60, loss=0.01)
    assert chosen == [] and a.level == "full"


def test_a_capped_link_goes_low_when_what_it_delivered_carries_it() -> None:
    a, clock, chosen = policy()
    reports(a, clock, 3, loss=0.6, sent=1_500_000)  # delivered ~600 kbit/s
    assert chosen == ["low"]


def test_what_reached_the_point_counts_not_what_we_sent_less_the_loss() -> None:
    """While a 700 kbit/s link's queue grows we send 1.7 Mbit/s of which the point has seen less
    than the counters' loss says: what reached it (from its reports) decides low over audio."""
    a, clock, chosen = policy()
    reports(a, clock, 3, loss=0.78, sent=1_700_000, delivered=660_000)  # 1.7M * 0.22 would be 374k
    assert chosen == ["low"] and a.capacity == 660_000
    # measured intervals are averaged: where a report falls moves one of them, not the link's rate
    b, clock_b, chosen_b = policy()
    for delivered in (640_000, 330_000):  # two severe intervals decide; the worst alone would say audio
        reports(b, clock_b, 1, loss=0.7, sent=1_700_000, delivered=delivered)
    assert chosen_b == ["low"] and b.capacity is not None and abs(b.capacity - 485_000) < 1


def test_a_cap_first_absorbed_by_the_links_queue_is_judged_by_its_worst_report() -> None:
    """At 150 kbit/s the first report after the cap loses less (the link's queue takes some): the
    run's worst report, not its last, says the low rendition would not fit either."""
    a, clock, chosen = policy()
    reports(a, clock, 1, loss=0.2, sent=1_500_000)  # 1.2 Mbit/s delivered while the queue filled
    reports(a, clock, 1, loss=0.9, sent=1_500_000)  # 150 kbit/s
    reports(a, clock, 1, loss=0.12, sent=1_500_000)
    assert chosen == ["audio"] and a.capacity is not None and a.capacity < 400_000


def test_a_very_weak_link_goes_to_audio_only_and_is_then_judged_by_its_audio() -> None:
    a, clock, chosen = policy()
    reports(a, clock, 2, loss=0.9, sent=1_500_000)  # delivered ~150 kbit/s: two severe reports
    assert chosen == ["audio"]
    reports(a, clock, 30, kind="video", loss=0.9)  # stale video reports say nothing of audio only
    assert chosen == ["audio"]
    reports(a, clock, SETTLE + FIRST_WAIT + 1, kind="audio", loss=0.0)
    assert chosen == ["audio", "low"], "a probe up after a good stretch"


def next_choice(a: Adaptation, clock: Clock, chosen: list[str], limit: float, **figures: float) -> tuple[str, float]:
    """Report once a second until the policy decides (or ``limit`` seconds): (choice, seconds)."""
    start, count = clock.now, len(chosen)
    while clock.now - start < limit:
        reports(a, clock, 1, **figures)
        if len(chosen) > count:
            return chosen[-1], clock.now - start
    return "", clock.now - start


def test_a_failed_probe_doubles_the_wait_and_a_held_one_resets_it() -> None:
    a, clock, chosen = policy()
    capped = {"loss": 0.6, "sent": 1_500_000}
    assert next_choice(a, clock, chosen, 10, **capped)[0] == "low"
    choice, after = next_choice(a, clock, chosen, 60, loss=0.02)
    assert choice == "full" and after == FIRST_WAIT  # the probe, a good stretch after the switch
    assert next_choice(a, clock, chosen, 10, **capped)[0] == "low"  # full does not fit: back down
    assert a.wait == 2 * FIRST_WAIT
    choice, after = next_choice(a, clock, chosen, 60, loss=0.02)
    assert choice == "full" and after == 2 * FIRST_WAIT
    for _ in range(4):  # it fails again and again: the wait stops growing at MAX_WAIT
        assert next_choice(a, clock, chosen, 10, **capped)[0] == "low"
        assert next_choice(a, clock, chosen, 60, loss=0.02)[0] == "full"
    assert a.wait == MAX_WAIT
    assert next_choice(a, clock, chosen, 15, loss=0.02)[0] == ""  # the probe held past PROBE_SECONDS
    assert a.level == "full" and a.wait == FIRST_WAIT


def test_queueing_alone_counts_as_congestion_and_jitter_alone_does_not() -> None:
    a, clock, chosen = policy()
    reports(a, clock, 5, loss=0.0, rtt=60.0)
    reports(a, clock, 3, loss=0.0, rtt=60.0 + BAD_QUEUE_MS + 50)  # a standing queue on this link
    assert chosen == ["low"]
    b, clock_b, chosen_b = policy()
    reports(b, clock_b, 3, loss=0.0, rtt=2500.0)  # a long round trip, whatever the link's lowest
    assert chosen_b == ["low"]
    c, clock_c, chosen_c = policy()
    reports(c, clock_c, 30, loss=0.02, jitter=200.0)  # the publisher's or the transcoder's timing
    assert chosen_c == []


def test_jitter_grown_above_the_links_lowest_with_loss_is_congestion() -> None:
    """6 % loss alone is the NACKs' to repair; with jitter grown past the link's lowest, a queue is
    building on a link at its limit. Jitter as high from the start is the source's, not this link's."""
    a, clock, chosen = policy()
    reports(a, clock, 5, loss=0.06, jitter=10.0)
    assert chosen == []
    reports(a, clock, 3, loss=0.06, jitter=10.0 + BAD_JITTER_MS + 20)
    assert chosen == ["low"]
    b, clock_b, chosen_b = policy()
    reports(b, clock_b, 30, loss=0.06, jitter=200.0)
    assert chosen_b == [] and b.stats()["min_jitter"] == 200.0


def test_reports_about_the_rendition_before_a_switch_are_skipped() -> None:
    a, clock, chosen = policy()
    reports(a, clock, 2, loss=0.6, sent=1_500_000)  # two severe reports: down at the second
    assert chosen == ["low"]
    reports(a, clock, int(SETTLE) - 1, loss=0.6, sent=1_500_000)  # the old rendition's queue draining
    assert chosen == ["low"]
    reports(a, clock, 2, loss=0.6, sent=400_000)  # now about the low rendition: it does not fit either
    assert chosen == ["low", "audio"]


class Padding:
    """The consumer's side of a padding probe: what rate it was asked for, and whether it can."""

    def __init__(self, can: bool = True) -> None:
        self.can = can
        self.calls: list[float] = []

    def __call__(self, bps: float) -> bool:
        self.calls.append(bps)
        return self.can


def padded_policy(can: bool = True) -> tuple[Adaptation, Clock, list[str], Padding]:
    clock, chosen, pad = Clock(), [], Padding(can)
    return Adaptation(chosen.append, low_need=400_000, clock=clock, pad=pad), clock, chosen, pad


def on_low(a: Adaptation, clock: Clock, chosen: list[str]) -> None:
    """Full at 1.5 Mbit/s, capped: down to low, which then sends 450 kbit/s cleanly."""
    reports(a, clock, 2, loss=0.0, sent=1_500_000)
    reports(a, clock, 3, loss=0.6, sent=1_500_000)
    assert chosen == ["low"]
    reports(a, clock, int(SETTLE), loss=0.0, sent=450_000)


def test_a_padding_probe_that_the_link_carries_takes_the_point_up() -> None:
    a, clock, chosen, pad = padded_policy()
    on_low(a, clock, chosen)
    start = clock.now
    while not pad.calls and clock.now - start < 60:
        reports(a, clock, 1, loss=0.0, sent=450_000)
    assert pad.calls == [1_500_000 - 450_000], "padding fills the difference to the full rendition's rate"
    assert chosen == ["low"], "no switch while padding"
    reports(a, clock, int(PAD_SECONDS), loss=0.02, sent=450_000)
    reports(a, clock, 1, loss=0.02, sent=450_000)
    assert chosen == ["low", "full"] and pad.calls[-1] == 0, "up after a clean probe, padding stopped"


def test_a_padding_probe_the_link_does_not_carry_keeps_the_picture_and_waits_longer() -> None:
    a, clock, chosen, pad = padded_policy()
    on_low(a, clock, chosen)
    while not pad.calls:
        reports(a, clock, 1, loss=0.0, sent=450_000)
    wait = a.wait
    reports(a, clock, 1, loss=0.4, sent=450_000)  # the padding overflows the link
    assert chosen == ["low"] and pad.calls[-1] == 0 and a.wait == 2 * wait
    reports(a, clock, int(SETTLE) - 1, loss=0.4, sent=450_000)  # the queue draining: not held against low
    assert chosen == ["low"]
    # The point's NACKs can end the next probe before a report does (media.egress.consumer).
    while len(pad.calls) < 3:
        reports(a, clock, 1, loss=0.0, sent=450_000)
    a.padding_failed()
    assert pad.calls[-1] == 0 and a.padding_since is None and a.wait == min(4 * wait, MAX_WAIT)
    assert chosen == ["low"]


def test_without_padding_the_switch_is_the_probe() -> None:
    a, clock, chosen, pad = padded_policy(can=False)  # e.g. the point negotiated no RTX
    on_low(a, clock, chosen)
    assert next_choice(a, clock, chosen, 60, loss=0.0, sent=450_000)[0] == "full"
    assert pad.calls, "asked first"


def test_a_receive_estimate_that_never_read_what_we_send_does_not_decide() -> None:
    """Chromium's REMB read 5 kbit/s on an uncapped link: it must not move a clean point."""
    a, clock, chosen = policy()
    for _ in range(10):
        a.estimate(5_000)
        reports(a, clock, 1, loss=0.0, sent=1_500_000)
    assert chosen == [] and a.stats()["remb"] == 5_000 and not a.stats()["remb_trusted"]


def test_a_trusted_receive_estimate_that_falls_takes_the_point_down_before_loss() -> None:
    """An estimate that has read what we send counts: one under the rendition's rate, three reports in
    a row without a packet lost, is a queue the browser saw first. A stale one says nothing."""
    a, clock, chosen = policy()
    a.estimate(1_700_000)
    reports(a, clock, 1, loss=0.0, sent=1_500_000)
    assert a.stats()["remb_trusted"]
    for _ in range(3):
        a.estimate(600_000)
        reports(a, clock, 1, loss=0.0, sent=1_500_000)
    assert chosen == ["low"]
    b, clock_b, chosen_b = policy()
    b.estimate(1_700_000)
    reports(b, clock_b, 1, loss=0.0, sent=1_500_000)
    b.estimate(600_000)
    reports(b, clock_b, 10, loss=0.0, sent=1_500_000)  # no newer estimate: it goes stale
    assert chosen_b == []


def test_a_receive_estimate_never_holds_back_a_probe_up() -> None:
    """On low, an estimate reads about what low sends, never full's rate: the probe still goes."""
    a, clock, chosen = policy()
    reports(a, clock, 3, loss=0.6, sent=1_500_000)
    assert chosen == ["low"]
    for _ in range(int(SETTLE + FIRST_WAIT + 2)):
        a.estimate(520_000)
        reports(a, clock, 1, loss=0.0, sent=450_000)
    assert chosen == ["low", "full"]


def test_a_picture_frozen_two_page_reports_in_a_row_takes_full_to_low_never_to_audio() -> None:
    """A page frozen a fifth of its report's time twice in a row: its link or its decoder cannot keep
    up with full. One such report, or frozen pictures on low, change nothing; a frozen report in the
    settling time after a switch is about the switch."""
    a, clock, chosen = policy()
    reports(a, clock, 5, loss=0.0)
    a.page(FROZEN_SHARE)
    reports(a, clock, 5, loss=0.0)
    a.page(0.0)
    reports(a, clock, 5, loss=0.0)
    a.page(0.5)
    assert chosen == []
    reports(a, clock, 5, loss=0.0)
    a.page(0.4)
    assert chosen == ["low"]
    for _ in range(4):
        reports(a, clock, 5, loss=0.0, sent=450_000)
        a.page(1.0)
    assert chosen == ["low"], "freezes alone never take video away"
    assert a.stats()["good_for"] < 5, "and they hold back the probe up"


def test_a_frozen_page_ends_a_padding_probe() -> None:
    a, clock, chosen, pad = padded_policy()
    on_low(a, clock, chosen)
    while not a.stats()["padding"] and clock.now < 1100:
        reports(a, clock, 1, loss=0.0, sent=450_000)
    assert a.stats()["padding"]
    a.page(0.6)
    assert not a.stats()["padding"] and pad.calls[-1] == 0 and a.wait == 2 * FIRST_WAIT and chosen == ["low"]
