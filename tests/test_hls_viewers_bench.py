"""The HLS viewers benchmark's own logic (bench/hls_viewers.py): reading a live playlist as a player
does, counting nginx's cache hits from its access log, and where the ramp stopped holding."""

from __future__ import annotations

from bench.hls_viewers import cache_counts, capacity, hit_share, parse_live
from media.recording.playlist import Segment, render


def test_a_live_window_is_numbered_from_its_media_sequence() -> None:
    segments = [Segment(f"seg{i:06d}.m4s", 2.0, 2.0 * i, "init0.mp4" if i < 40 else "init1.mp4") for i in range(45)]
    text = render(segments, nominal_duration=2.0, ended=False, window=30, uri_prefix="rec/", query="exp=1&sig=a.b")
    live = parse_live(text)
    assert live.target == 2.0 and not live.ended
    assert [s.sequence for s in live.segments] == list(range(15, 45))  # identity across reloads
    assert live.segments[0].uri == "rec/seg000015.m4s?exp=1&sig=a.b"  # the signature kept, as a player sends it
    assert {s.map_uri.split("?")[0] for s in live.segments} == {"rec/init0.mp4", "rec/init1.mp4"}
    assert parse_live(render(segments, nominal_duration=2.0, ended=True)).ended


def test_cache_hits_are_counted_per_kind() -> None:
    log = "\n".join([
        '127.0.0.1 [t] "GET /hls/c/r/seg1.m4s" 200 520449 0.010 cache=HIT',
        '127.0.0.1 [t] "GET /hls/c/r/seg1.m4s" 200 520449 1.250 cache=MISS',
        '127.0.0.1 [t] "GET /hls/c/index.m3u8" 200 900 0.002 cache=HIT',
        '127.0.0.1 [t] "GET /hls/c/r/init0.mp4" 200 900 0.002 cache=HIT',  # init segments: neither kind
        '127.0.0.1 [t] "GET /healthz" 200 2 0.001 cache=-',
    ])
    counts = cache_counts(log)
    assert counts == {"segment": {"HIT": 1, "MISS": 1}, "playlist": {"HIT": 1}}
    assert hit_share(counts["segment"]) == 0.5 and hit_share({}) is None


def test_capacity_is_the_last_step_within_a_segment() -> None:
    def step(n: int, p95: float | None, errors: dict | None = None) -> dict:
        return {"n": n, "p95": p95, "errors": errors or {}}

    assert capacity([step(250, 1.2), step(100, 0.3), step(500, 2.6), step(1000, 1.0)], 2.0) == \
        {"holds": 250, "exceeded_at": 500}  # a later good step does not undo the first bad one
    assert capacity([step(100, 0.3), step(250, 0.5, {"segment 500": 3})], 2.0) == {"holds": 100, "exceeded_at": 250}
    assert capacity([step(100, 0.3)], 2.0) == {"holds": 100, "exceeded_at": None}
    hung = {**step(250, 0.4), "stuck": 7}  # viewers still waiting for an answer count against the step
    assert capacity([step(100, 0.3), hung], 2.0) == {"holds": 100, "exceeded_at": 250}
    assert capacity([step(100, None)], 2.0) == {"holds": None, "exceeded_at": 100}  # nothing fetched at all
    assert capacity([step(100, 3.0)], 2.0) == {"holds": None, "exceeded_at": 100}
    slow_playlists = {**step(250, 0.5), "playlist_p95": 3.2}  # segments from a cache, playlists stuck behind
    assert capacity([step(100, 0.3), slow_playlists], 2.0) == {"holds": 100, "exceeded_at": 250}
