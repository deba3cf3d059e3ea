"""The rendition policy (media.renditions.adaptation) on a fake clock: what a point's receiver
reports make it choose, and that it does not flap."""

from __future__ import annotations

from media.renditions.adaptation import FIRST_WAIT, MAX_WAIT, SETTLE, Adaptation


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
                 figures.get("sent"))


def test_a_clean_link_stays_on_full() -> None:
    a, clock, chosen = policy()
    reports(a, clock, 60, loss=0.01)
    assert chosen == [] and a.level == "full"


def test_a_capped_link_goes_low_when_what_it_delivered_carries_it() -> None:
    a, clock, chosen = policy()
    reports(a, clock, 3, loss=0.6, sent=1_500_000)  # delivered ~600 kbit/s
    assert chosen == ["low"]


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


def test_queueing_alone_counts_as_congestion() -> None:
    a, clock, chosen = policy()
    reports(a, clock, 3, loss=0.0, jitter=200.0)
    assert chosen == ["low"]
    b, clock_b, chosen_b = policy()
    reports(b, clock_b, 3, loss=0.0, rtt=2500.0)
    assert chosen_b == ["low"]


def test_reports_about_the_rendition_before_a_switch_are_skipped() -> None:
    a, clock, chosen = policy()
    reports(a, clock, 2, loss=0.6, sent=1_500_000)  # two severe reports: down at the second
    assert chosen == ["low"]
    reports(a, clock, int(SETTLE) - 1, loss=0.6, sent=1_500_000)  # the old rendition's queue draining
    assert chosen == ["low"]
    reports(a, clock, 2, loss=0.6, sent=400_000)  # now about the low rendition: it does not fit either
    assert chosen == ["low", "audio"]
