"""/metrics against the shared server (the ingest and 2 media workers) while an aiortc publisher streams
to subscribers on both workers: the exposition parses with prometheus-client's own parser, its
counters move, its series are per conference and worker (never per point), a point pinned to the
low rendition shows in the renditions and the server transcode's CPU, counters survive a subscriber
leaving, and a scrape storm costs the workers one stats request. The Grafana dashboard
(config/grafana/diemcau.json) plots only metrics the scrape has."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.clip import test_clip
from bench.server_process import ROOT
from bench.whip_publisher import publish
from tests.support.peers import Subscriber, delete_session, subscribe
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out

Samples = dict[str, list[tuple[dict[str, str], float]]]

# What Grafana's dashboard (config/grafana/diemcau.json) plots: each must be in every scrape.
FAMILIES = (
    "diemcau_sessions", "diemcau_forwarded_packets", "diemcau_forwarded_bytes", "diemcau_retransmissions",
    "diemcau_packets_lost", "diemcau_keyframe_requests", "diemcau_keyframe_requests_sent",
    "diemcau_subscriber_loss_ratio_mean", "diemcau_renditions_in_use", "diemcau_transcoders",
    "diemcau_transcoder_cpu_seconds", "diemcau_handshakes_admitted", "diemcau_handshake_waits",
    "diemcau_worker_up", "diemcau_producers", "diemcau_consumers",
)


def scrape_text(server: ServerProcess) -> str:
    with server.admin() as c:
        r = c.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """(family name -> type, sample name -> [(labels, value)]) by prometheus-client's parser."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return types, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when there is none)."""
    return sum(v for got, v in samples.get(name, []) if all(got.get(k) == want for k, want in labels.items()))


def scrape(server: ServerProcess) -> Samples:
    return parse(scrape_text(server))[1]


async def scrape_after_cache(server: ServerProcess) -> Samples:
    """A scrape with the workers' figures newer than the last one (the cache keeps them 2 s)."""
    await asyncio.sleep(2.1)
    return await asyncio.to_thread(scrape, server)


@pytest.fixture(scope="module")
def clip():  # type: ignore[no-untyped-def]
    return test_clip(seconds=6, width=320, height=180, fps=30, kbps=400)


@pytest.fixture(scope="module")
def conference(server: ServerProcess) -> str:
    return server.create_conference("Hội nghị đo đếm")


def test_every_family_parses_with_its_type(server: ServerProcess, conference: str) -> None:
    types, samples = parse(scrape_text(server))
    missing = [f for f in FAMILIES if f not in types]
    assert not missing, f"families missing from /metrics: {missing}"
    assert types["diemcau_forwarded_packets"] == "counter" and types["diemcau_sessions"] == "gauge"
    # every media process answers: the ingest (0) and the two workers
    assert {labels["worker"]: v for labels, v in samples["diemcau_worker_up"]} == {"0": 1.0, "1": 1.0, "2": 1.0}
    # the disk and webhook figures of the ingest are there too
    assert value(samples, "diemcau_disk_free_bytes") > 0
    assert "diemcau_webhook_queue" in types


def test_the_grafana_dashboard_plots_only_what_metrics_exposes(server: ServerProcess) -> None:
    types, _ = parse(scrape_text(server))
    dashboard = json.loads((ROOT / "config" / "grafana" / "diemcau.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    queries += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    named = {name for q in queries for name in re.findall(r"diemcau_[a-z_]+", q)}

    def exposed(name: str) -> bool:
        family = name.removesuffix("_total")
        return name in types or (family != name and types.get(family) == "counter")

    assert len(named) >= 25 and not [n for n in named if not exposed(n)], sorted(n for n in named if not exposed(n))
    plotted = {n.removesuffix("_total") for n in named}
    unplotted = set(FAMILIES) - plotted - {"diemcau_producers", "diemcau_consumers"}  # sessions has both, by role
    assert not unplotted, unplotted


async def test_counters_move_per_conference_and_worker_while_streaming(
    server: ServerProcess, conference: str, clip  # type: ignore[no-untyped-def]
) -> None:
    conf = conference
    names = ["Xã Tân Lập", "Xã Hòa Bình"]
    points, tokens = [], []
    with server.admin() as c:
        for name in names:
            point = c.post(f"/api/v1/conferences/{conf}/points", json={"name": name, "level": "commune"}).json()["id"]
            points.append(point)
            tokens.append(c.post(f"/api/v1/conferences/{conf}/points/{point}/token").json()["token"])
    pub = await publish(server.url, conf, server.token(conf, "speaker", "Hội trường"), clip)
    subs: list[Subscriber] = []
    try:
        subs = [await subscribe(server.url, conf, token) for token in tokens]
        for sub in subs:
            assert await sub.wait_frames(30, timeout=20), f"only {sub.frames} frames"
        first = await scrape_after_cache(server)
        # two points, one per worker (the ingest keeps none while they are up); the speaker publishes on 0
        watching = {labels["worker"]: v for labels, v in first["diemcau_sessions"]
                    if labels["conference"] == conf and labels["direction"] == "watch"}
        assert watching == {"1": 1.0, "2": 1.0}, first["diemcau_sessions"]
        assert value(first, "diemcau_sessions", conference=conf, worker="0", direction="publish", role="speaker") == 1
        assert value(first, "diemcau_renditions_in_use", conference=conf, rendition="full") == 2
        assert value(first, "diemcau_keyframe_requests_sent_total", conference=conf) >= 1  # joins ask for one
        for worker in ("1", "2"):
            assert value(first, "diemcau_handshakes_admitted_total", worker=worker) >= 1
            assert value(first, "diemcau_subscriber_rtt_seconds_mean", conference=conf, worker=worker) > 0

        await asyncio.sleep(1.0)
        second = await scrape_after_cache(server)
        for worker in ("1", "2"):
            for kind in ("video", "audio"):
                for name in ("diemcau_forwarded_packets_total", "diemcau_forwarded_bytes_total"):
                    before = value(first, name, conference=conf, worker=worker, kind=kind)
                    after = value(second, name, conference=conf, worker=worker, kind=kind)
                    assert after > before > 0, (name, worker, kind, before, after)
            # over 3 s of 30 fps video between the two scrapes: at least a packet per frame
            moved = (value(second, "diemcau_forwarded_packets_total", conference=conf, worker=worker, kind="video")
                     - value(first, "diemcau_forwarded_packets_total", conference=conf, worker=worker, kind="video"))
            assert moved >= 60, (worker, moved)

        # The organiser pins the second point to the low rendition: the server transcodes it (ingest)
        with server.admin() as c:
            r = c.post(f"/api/v1/conferences/{conf}/points/{points[1]}/rendition", json={"rendition": "low"})
        assert r.status_code == 200, r.text
        pinned = await wait_until_async(
            lambda: scrape_after_cache(server), 20, "the low rendition made and received",
            check=lambda s: value(s, "diemcau_renditions_in_use", conference=conf, rendition="low") == 1
            and value(s, "diemcau_transcoder_cpu_seconds_total", conference=conf, worker="0") > 0, interval=0.1,
        )
        assert value(pinned, "diemcau_renditions_pinned", conference=conf, rendition="low") == 1
        assert value(pinned, "diemcau_renditions_in_use", conference=conf, rendition="full") == 1
        assert value(pinned, "diemcau_transcoders", conference=conf, worker="0") == 1
        assert value(pinned, "diemcau_transcoder_frames_total", conference=conf, stage="out") > 0

        # Labels name conferences and media processes, never a point: no point's name, id or session
        text = await asyncio.to_thread(scrape_text, server)
        for secret in [*names, *points, *(s.location.rsplit("/", 1)[-1] for s in subs)]:
            assert secret not in text

        # A point leaving does not take its packets out of the conference's counters (no false reset)
        await asyncio.sleep(2.1)
        before = await asyncio.to_thread(scrape, server)  # the leaver's figures as of just before it leaves
        gone = subs.pop(0)
        assert await delete_session(gone.location, tokens[0]) == 200
        await gone.close()

        after = await wait_until_async(
            lambda: scrape_after_cache(server), 20, "the leaver's session gone from /metrics",
            check=lambda s: value(s, "diemcau_sessions", conference=conf, direction="watch") == 1, interval=0.1,
        )
        for name in ("diemcau_forwarded_packets_total", "diemcau_forwarded_bytes_total"):
            for worker in ("1", "2"):
                was = value(before, name, conference=conf, worker=worker, kind="video")
                now = value(after, name, conference=conf, worker=worker, kind="video")
                assert now >= was > 0, (name, worker, was, now)
    finally:
        for sub in subs:
            await sub.close()
        await pub.close()


async def test_a_scrape_storm_asks_the_workers_once(server: ServerProcess, conference: str) -> None:
    first = await asyncio.to_thread(scrape, server)
    refreshes = value(first, "diemcau_worker_stats_refreshes_total")
    assert refreshes >= 1

    async with httpx.AsyncClient(base_url=server.url, timeout=15,
                                 headers={"Authorization": f"Bearer {server.admin_token}"}) as c:
        answers = await asyncio.gather(*(c.get("/metrics") for _ in range(20)))
    assert all(r.status_code == 200 for r in answers)
    counted = [value(parse(r.text)[1], "diemcau_worker_stats_refreshes_total") for r in answers]
    # all within the cache's 2 s of the first scrape: the workers were asked at most once more
    assert max(counted) - refreshes <= 1, counted
