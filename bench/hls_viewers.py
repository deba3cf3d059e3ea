"""``python -m bench.hls_viewers``: home viewers of the live HLS stream, and what they cost the server.

One server (``python -m server.main`` on 127.0.0.1), the speaker's publisher (``bench.publisher``:
the 720p30 clip over WHIP, recorded into live HLS) and N simulated home viewers in load-generator
processes (asyncio + aiohttp). Each viewer does what hls.js does with a live playlist: it loads the
playlist with its own token, starts three segments behind the live edge, loads the init segment,
fetches every segment in order, and reloads the playlist after a target duration (half of one when
nothing changed; at once when fetching took longer, so a slow viewer's URIs are never stale). Viewers
join in steps (full run: 100, 250, 500, 1000; ``--quick``: 100), spread over one segment's time; at
each step, after a warm-up, a window measures:

- the server's CPU (all its processes) over the window, less its CPU with the publisher and no viewer:
  per viewer;
- each segment fetch, request to last byte: p50, p95, max, and the share slower than a segment lasts
  (a viewer whose fetch takes longer than the segment plays stalls);
- the viewer count at which the p95 of segment or of playlist fetches first exceeds a segment's
  duration: how many one node holds.

The ramp runs against the Python server directly with a viewer token per viewer, then through nginx
with ``config/nginx/diemcau.conf`` as shipped (``bench.nginx_front``: HTTPS, its HLS cache; the cache's
hits counted from its access log), once with the same tokens and once with every viewer on one signed
live link (``POST …/hls-link``, as a TV's), when nginx is installed; otherwise the section says so. The section goes between ``doc_sections.HLS``'s
markers of ``docs/benchmarks.md`` (full run) or ``data/bench/benchmarks-latest.md``. Targets are
reported, never asserted. Only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import random
import resource
import shlex
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from bench import doc_sections, ipc, procstat
from bench.run import CLIP, Cleanup, Phase, _token, _wait, log, pct

ROOT = Path(__file__).resolve().parents[1]
TARGETS_DOC = "docs/benchmarks.md"
FULL_STEPS = [100, 250, 500, 1000]
QUICK_STEPS = [100]
PATH_TITLES = {
    "direct": "The Python server directly, each viewer its own token",
    "nginx": "Through nginx, each viewer its own token",
    "nginx, shared link": "Through nginx, every viewer on one signed live link (as a TV's)",
}
LIVE_SYNC_SEGMENTS = 3  # hls.js liveSyncDurationCount: start this many segments behind the live edge
FETCH_TIMEOUT = 30.0


# --- the playlist as a player reads it ------------------------------------------------------------
@dataclass(frozen=True)
class LiveSegment:
    sequence: int  # media sequence number: a segment's identity across reloads
    uri: str  # as written, signature included
    duration: float
    map_uri: str


@dataclass(frozen=True)
class LivePlaylist:
    target: float
    segments: list[LiveSegment]
    ended: bool


def parse_live(text: str) -> LivePlaylist:
    """A live media playlist: target duration, segments numbered from the media sequence, ENDLIST."""
    target, sequence, duration, map_uri = 0.0, 0, None, ""
    segments: list[LiveSegment] = []
    ended = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-TARGETDURATION:"):
            target = float(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            sequence = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-MAP:"):
            map_uri = line.split('URI="', 1)[1].split('"', 1)[0]
        elif line.startswith("#EXTINF:"):
            duration = float(line[8:].split(",", 1)[0])
        elif line == "#EXT-X-ENDLIST":
            ended = True
        elif line and not line.startswith("#") and duration is not None:
            segments.append(LiveSegment(sequence + len(segments), line, duration, map_uri))
            duration = None
    return LivePlaylist(target, segments, ended)


# --- what one window saw ---------------------------------------------------------------------------
@dataclass
class Samples:
    """Fetches of a set of viewers since the last collection: seconds per segment and per playlist."""

    segment: list[float] = field(default_factory=list)
    segment_bytes: int = 0
    playlist: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    waiting: dict[int, float] = field(default_factory=dict)  # viewer -> when its unanswered request began

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    def take(self, stuck_after: float) -> dict[str, Any]:
        """What was fetched since the last take, and how many viewers have waited over ``stuck_after``
        seconds for the answer they are still waiting for (a stall no finished fetch shows)."""
        now = time.monotonic()
        out = {"segment": self.segment, "segment_bytes": self.segment_bytes, "playlist": self.playlist,
               "errors": self.errors, "stuck": sum(now - t > stuck_after for t in self.waiting.values())}
        self.segment, self.segment_bytes, self.playlist, self.errors = [], 0, [], {}
        return out


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The load generators' collections as one."""
    out: dict[str, Any] = {"segment": [], "segment_bytes": 0, "playlist": [], "errors": {}, "stuck": 0}
    for p in parts:
        out["stuck"] += p["stuck"]
        out["segment"] += p["segment"]
        out["playlist"] += p["playlist"]
        out["segment_bytes"] += p["segment_bytes"]
        for k, v in p["errors"].items():
            out["errors"][k] = out["errors"].get(k, 0) + v
    return out


def summarize_step(n: int, seen: dict[str, Any], cpu: dict, baseline_cores: float, segment_seconds: float,
                   window: float) -> dict[str, Any]:
    """One step's figures: fetch percentiles, the share of slow fetches, server CPU per viewer."""
    fetches = seen["segment"]
    cores = cpu["server"]["cores"]
    return {
        "n": n,
        "segments": len(fetches),
        "expected_segments": round(n * window / segment_seconds),
        "p50": pct(fetches, 0.5), "p95": pct(fetches, 0.95), "max": max(fetches) if fetches else None,
        "slow_share": sum(f > segment_seconds for f in fetches) / len(fetches) if fetches else None,
        "playlist_p95": pct(seen["playlist"], 0.95),
        "mbit_s": seen["segment_bytes"] * 8 / window / 1e6,
        "errors": seen["errors"],
        "stuck": seen["stuck"],
        "server_cores": cores,
        "ms_per_viewer_s": (cores - baseline_cores) * 1000 / n,  # server CPU ms per viewer per second
        "loadgen_cores": cpu.get("loadgen", {}).get("cores"),
        "foreign_cores": cpu.get("foreign_cores"),
    }


def capacity(steps: list[dict[str, Any]], segment_seconds: float) -> dict[str, int | None]:
    """The largest step whose p95 segment and playlist fetches stayed within a segment's duration (a
    player waiting longer for either runs its buffer down), and the first that did not."""
    held, broke = None, None
    for s in sorted(steps, key=lambda s: s["n"]):
        playlist = s.get("playlist_p95")
        within = (s["p95"] is not None and s["p95"] <= segment_seconds and not s["errors"] and not s.get("stuck")
                  and (playlist is None or playlist <= segment_seconds))
        if broke is None:
            held, broke = (s["n"], None) if within else (held, s["n"])
    return {"holds": held, "exceeded_at": broke}


# --- one viewer, as hls.js --------------------------------------------------------------------------
async def fetch(session: Any, url: str, samples: Samples, viewer_id: int, params: dict[str, str] | None = None
                ) -> tuple[int, bytes, float]:
    """GET ``url`` to its last byte: status, body, seconds. While it runs the viewer counts as waiting."""
    began = samples.waiting[viewer_id] = time.monotonic()
    try:
        async with session.get(url, params=params) as r:
            return r.status, await r.read(), time.monotonic() - began
    finally:
        samples.waiting.pop(viewer_id, None)


async def viewer(session: Any, base: str, conference: str, link: dict[str, str], start_delay: float,
                 samples: Samples, stop: asyncio.Event) -> None:
    """Load the live playlist (``link``: its query, the viewer's token or a signed link) and its segments
    until ``stop``; every fetch timed into ``samples``."""
    import aiohttp

    await asyncio.sleep(start_delay)
    me = id(session)
    directory = f"{base}/hls/{conference}/"
    next_sequence: int | None = None
    loaded_map = ""
    while not stop.is_set():
        loaded_at = time.monotonic()
        reload = 1.0
        try:
            status, body, took = await fetch(session, f"{directory}index.m3u8", samples, me, link)
            if status != 200:
                samples.error(f"playlist {status}")
            else:
                samples.playlist.append(took)
                playlist = parse_live(body.decode())
                if next_sequence is None and playlist.segments:
                    next_sequence = playlist.segments[max(0, len(playlist.segments) - LIVE_SYNC_SEGMENTS)].sequence
                fresh = [s for s in playlist.segments if next_sequence is not None and s.sequence >= next_sequence]
                for segment in fresh:
                    if stop.is_set():
                        return
                    if time.monotonic() - loaded_at >= playlist.target:
                        break  # as hls.js, which reloads on its timer: the next segments' URIs from a fresh playlist
                    if segment.map_uri != loaded_map:
                        await fetch(session, directory + segment.map_uri, samples, me)
                        loaded_map = segment.map_uri
                    status, body, took = await fetch(session, directory + segment.uri, samples, me)
                    if status != 200:
                        samples.error(f"segment {status}")
                        continue
                    samples.segment.append(took)
                    samples.segment_bytes += len(body)
                    next_sequence = segment.sequence + 1
                reload = playlist.target if fresh else playlist.target / 2
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            samples.error(type(exc).__name__)
        try:
            await asyncio.wait_for(stop.wait(), max(0.1, reload - (time.monotonic() - loaded_at)))
        except asyncio.TimeoutError:
            pass


def loadgen_main(conn: Any, base: str, host: str | None, conference: str) -> None:
    """A load-generator process: ``add`` viewers (their playlist queries, joins spread over ``spread`` s),
    ``collect`` what they fetched since the last collection; ``exit`` stops them. ``host``: the Host
    header to send (the public name, through the proxy)."""
    ipc.child_setup()
    asyncio.run(_loadgen(conn, base, host, conference))


async def _loadgen(conn: Any, base: str, host: str | None, conference: str) -> None:
    import aiohttp

    samples = Samples()
    stop = asyncio.Event()
    sessions: list[Any] = []
    tasks: list[asyncio.Task] = []
    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT)

    async def handle(msg: dict) -> dict:
        if msg["op"] == "add":
            for link in msg["links"]:  # each home viewer its own connection, as a browser at home
                session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1, ssl=False), timeout=timeout,
                                                headers={"Host": host} if host else None)
                sessions.append(session)
                delay = random.uniform(0, msg["spread"])
                tasks.append(asyncio.ensure_future(viewer(session, base, conference, link, delay, samples, stop)))
            return {"viewers": len(tasks)}
        if msg["op"] == "collect":
            return samples.take(msg["stuck_after"])
        raise ValueError(f"unknown op {msg['op']}")

    try:
        await ipc.serve(conn, handle)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for session in sessions:
            await session.close()


# --- the run ---------------------------------------------------------------------------------------
def nginx_missing() -> str | None:
    """Why the run through nginx's cache cannot be made here (None: it can)."""
    from bench.nginx_front import NGINX, SHIPPED

    if not SHIPPED.exists():
        return f"{SHIPPED.relative_to(ROOT)} is not in the tree"
    if not Path(NGINX).exists():
        return "nginx is not installed (apt-get install -y nginx)"
    return None


def cache_counts(access_log: str) -> dict[str, dict[str, int]]:
    """nginx's cache status per kind of HLS request, from the access log lines of
    config/nginx/diemcau.conf's format (``"GET /hls/…/x.m4s" 200 … cache=HIT``)."""
    out: dict[str, dict[str, int]] = {"segment": {}, "playlist": {}}
    for line in access_log.splitlines():
        if '"GET /hls/' not in line or " cache=" not in line:
            continue
        uri = line.split('"GET ', 1)[1].split('"', 1)[0]
        kind = "playlist" if uri.endswith(".m3u8") else "segment" if uri.endswith(".m4s") else None
        if kind is not None:
            status = line.rsplit(" cache=", 1)[1].strip() or "-"
            out[kind][status] = out[kind].get(status, 0) + 1
    return out


def hit_share(counts: dict[str, int]) -> float | None:
    total = sum(counts.values())
    return counts.get("HIT", 0) / total if total else None


def ramp(opts: argparse.Namespace, path: str, base: str, host: str | None, conf: str, links: list[dict[str, str]],
         roots: dict[str, list[int]], baseline: float, front: Any, cleanup: Cleanup) -> list[dict[str, Any]]:
    """Viewers joining step by step on one path (``base``, and the Host they send); a window per step."""
    gens = [ipc.Child(f"{path}-viewers-{i}", loadgen_main, base, host, conf) for i in range(opts.loadgen_procs)]
    for g in gens:
        cleanup.add(g.name, g.stop)
    roots = {**roots, "loadgen": [g.pid for g in gens]}
    steps, joined = [], 0
    try:
        for n in opts.steps:
            new = links[joined:n]
            shares = [new[i::len(gens)] for i in range(len(gens))]
            ipc.call_all(gens, "add", 30, [{"links": s, "spread": opts.segment} for s in shares])
            joined = n
            log(f"HLS viewers ({path}): {n} watching; warming up {opts.warmup:g} s")
            time.sleep(opts.warmup)
            collect = [{"stuck_after": opts.segment}] * len(gens)
            ipc.call_all(gens, "collect", 30, collect)
            seen_log = len(front.access_log()) if front else 0
            phase = Phase(roots)
            phase.start()
            time.sleep(opts.window)
            cpu = phase.stop()
            seen = merge(ipc.call_all(gens, "collect", 60, collect))
            step = summarize_step(n, seen, cpu, baseline, opts.segment, opts.window)
            if front:
                step["cache"] = cache_counts(front.access_log()[seen_log:])
                step["proxy_cores"] = cpu["nginx"]["cores"]
            steps.append(step)
            log(f"N={n} ({path}): segment p95 {fmt(step['p95'])} s, server {step['server_cores']:.2f} cores, "
                f"{fmt(step['ms_per_viewer_s'])} ms CPU per viewer-second, errors {step['errors']}")
    finally:
        for g in gens:
            g.stop()
    return steps


def run(opts: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """The ramp served directly, then through nginx's cache (if here); every child process and nginx are
    stopped before it returns."""
    from bench import publisher
    from bench.nginx_front import PUBLIC_NAME, NginxFront
    from bench.server_process import ServerProcess

    res: dict[str, Any] = {"paths": {}, "load_start": os.getloadavg(), "nginx_missing": nginx_missing()}
    cleanup = Cleanup()
    try:
        env = {"DIEMCAU_WORKERS": str(opts.workers), "DIEMCAU_HLS_SEGMENT_SECONDS": str(opts.segment)}
        srv = ServerProcess(workdir / "server", env=env)
        srv.start(timeout=90)
        cleanup.add("server", srv.stop)
        assert srv.proc is not None
        conf = srv.create_conference("Benchmark: HLS viewers")
        with srv.admin() as c:
            speaker = _token(c, conf, "speaker", "Hội trường")
            personal = [{"token": _token(c, conf, "viewer", f"Người xem {i}")} for i in range(max(opts.steps))]
            organiser = _token(c, conf, "organiser", "Ban tổ chức")
            r = c.post(f"/api/v1/conferences/{conf}/hls-link", json={"hours": 2},
                       headers={"Authorization": f"Bearer {organiser}"})
            r.raise_for_status()
            shared = dict(parse_qsl(urlsplit(r.json()["playlist_url"]).query))  # a TV's link: one for all
        src = ipc.Child("speaker", publisher.main, srv.url, conf, speaker, CLIP)
        cleanup.add("speaker", src.stop)
        _wait(lambda: (s := src.call("status"))["state"] == "connected" and s["sent"]["video"] > 60, 30,
              "the speaker connected and sending")
        with srv.admin() as c:
            _wait(lambda: c.get(f"/hls/{conf}/index.m3u8").text.count("#EXTINF") >= LIVE_SYNC_SEGMENTS + 1, 60,
                  "the live playlist's first segments")
        roots = {"server": [srv.proc.pid], "publisher": [src.pid]}
        res["baseline"] = _cpu(roots, opts.window)
        baseline = res["baseline"]["server"]["cores"]
        res["paths"]["direct"] = ramp(opts, "direct", srv.url, None, conf, personal, roots, baseline, None, cleanup)
        if res["nginx_missing"] is None:
            front = NginxFront(workdir / "nginx", srv.port).start()
            cleanup.add("nginx", front.stop)
            assert front.proc is not None
            proxy_roots = {**roots, "nginx": procstat.descendants(front.proc.pid)}
            host = f"{PUBLIC_NAME}:{front.port}"
            res["paths"]["nginx"] = ramp(opts, "nginx", front.local_url, host, conf, personal, proxy_roots,
                                         baseline, front, cleanup)
            res["paths"]["nginx, shared link"] = ramp(opts, "nginx, shared link", front.local_url, host, conf,
                                                      [shared] * len(personal), proxy_roots, baseline, front,
                                                      cleanup)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - reported in the section
        res["error"] = f"{type(exc).__name__}: {exc}"
        res["trace"] = traceback.format_exc()
        log(f"HLS viewers: FAILED: {res['error']}")
    finally:
        cleanup.run()
        res["load_end"] = os.getloadavg()
    return res


def _cpu(roots: dict[str, list[int]], seconds: float) -> dict:
    phase = Phase(roots)
    phase.start()
    time.sleep(seconds)
    return phase.stop()


# --- the report ------------------------------------------------------------------------------------
def fmt(value: float | None, pattern: str = "{:.2f}") -> str:
    return "–" if value is None else pattern.format(value)


def section(res: dict, opts: argparse.Namespace, machine: dict, started: datetime.datetime, elapsed: float,
            command: str) -> str:
    start, end = doc_sections.HLS
    load = " / ".join(fmt(x[0]) if x else "–" for x in (res.get("load_start"), res.get("load_end")))
    lines = [
        start,
        "## Live HLS home viewers (issue 25: bench/hls_viewers.py)",
        "",
        f"- **Date:** {started.strftime('%Y-%m-%d %H:%M %Z').strip()} (took {elapsed / 60:.1f} min); load average "
        f"(1 min) at the start / end: {load} on {machine['cores']} cores ({machine['cpu_model']})",
        f"- **Command:** `{command}`",
        f"- **Settings:** DIEMCAU_WORKERS={opts.workers}; the speaker 1280×720 30 fps ~2 Mbit/s H.264 + Opus over "
        f"WHIP, recorded into {opts.segment:g} s fMP4 segments; viewers in {opts.loadgen_procs} load-generator "
        f"process(es) on the same machine, each with its own connection, joining over "
        f"{opts.segment:g} s; warm-up {opts.warmup:g} s, then a {opts.window:g} s window per step; all traffic on "
        "127.0.0.1",
        "- **Paths:** the Python server directly, each viewer with its own viewer token; "
        + ("then through nginx with config/nginx/diemcau.conf as shipped (bench/nginx_front.py: HTTPS, its HLS "
           "cache), with the same tokens, and with every viewer on one signed live link"
           if not res.get("nginx_missing") else f"through nginx's cache not measured: {res['nginx_missing']}"),
    ]
    busy = max((x[0] for x in (res.get("load_start"), res.get("load_end")) if x), default=0.0)
    if busy > machine["cores"]:
        lines.append(f"- **Caution:** the machine was busy with other work (load average up to {busy:.1f} on "
                     f"{machine['cores']} cores): these figures show that contention as much as the server.")
    lines.append("")
    if res.get("error"):
        done = sum(len(v) for v in res["paths"].values())
        lines += [f"**The run failed:** `{res['error'].splitlines()[0][:300]}` (after {done} steps).", ""]
    if res["paths"]:
        lines += ["### Targets (reported, never asserted)", ""]
        for path, steps in res["paths"].items():
            cap = capacity(steps, opts.segment)
            verdict = (f"p95 within a segment's {opts.segment:g} s up to N={cap['holds']}" if cap["holds"] else
                       "already at the first step the p95 was beyond a segment's duration, or fetches failed "
                       "or hung")
            verdict += (f"; first exceeded at N={cap['exceeded_at']}" if cap["exceeded_at"] else
                        f"; not exceeded up to N={max(s['n'] for s in steps)}" if steps else "")
            lines.append(f"- Viewers one node holds before a segment or playlist fetch takes longer than a "
                         f"segment lasts ({path}): {verdict}.")
        lines += [f"- Server CPU with the publisher and no viewer (recording, live HLS): "
                  f"{res['baseline']['server']['cores']:.2f} cores; CPU per viewer is over that.", ""]
        for path, steps in res["paths"].items():
            proxy = path.startswith("nginx")
            lines += [
                f"#### {PATH_TITLES[path]}",
                "",
                "| viewers | segment fetch p50 / p95 / max (s) | slower than a segment | playlist p95 (s) | served "
                "Mbit/s | server cores | server CPU per viewer (ms/s) | "
                + ("nginx cores | cache hits: segments / playlists | " if proxy else "")
                + "load generator cores | errors |",
                "|---|---|---|---|---|---|---|" + ("---|---|" if proxy else "") + "---|---|",
            ]
            for s in steps:
                errors = ", ".join([f"{k} ×{v}" for k, v in s["errors"].items()]
                                   + ([f"{s['stuck']} viewers waiting over {opts.segment:g} s at the end"]
                                      if s.get("stuck") else [])) or "0"
                cache = (f"{fmt(s['proxy_cores'])} | {fmt(hit_share(s['cache']['segment']), '{:.0%}')} / "
                         f"{fmt(hit_share(s['cache']['playlist']), '{:.0%}')} | ") if proxy else ""
                lines.append(
                    f"| {s['n']} | {fmt(s['p50'])} / {fmt(s['p95'])} / {fmt(s['max'])} | "
                    f"{fmt(s['slow_share'], '{:.1%}')} ({s['segments']} of ~{s['expected_segments']} fetches) | "
                    f"{fmt(s['playlist_p95'])} | {s['mbit_s']:.0f} | {s['server_cores']:.2f} | "
                    f"{fmt(s['ms_per_viewer_s'])} | {cache}{fmt(s['loadgen_cores'])} | {errors} |")
            shares = [hit_share(s["cache"]["segment"]) for s in steps if proxy]
            if path == "nginx" and shares and max(x or 0 for x in shares) < 0.1:
                lines.append("\nThe shipped configuration keeps a segment under its path without the query, so "
                             "viewers on links of their own should share one copy of it: a share this low means "
                             "they did not (is config/nginx/diemcau.conf as shipped?).")
            lines.append("")
        lines.append("Server CPU per viewer is in milliseconds of CPU per second of watching. The load generators "
                     "share the machine's cores with the server: their CPU is taken from it, so these figures are "
                     "a floor on what one node holds, not a ceiling.")
    lines.append(end)
    return "\n".join(lines)


# --- command line ------------------------------------------------------------------------------------
def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.hls_viewers", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"one step of {QUICK_STEPS[0]} viewers, 10 s window")
    p.add_argument("--steps", type=lambda s: [int(x) for x in s.split(",")], help="viewer counts, e.g. 100,250")
    p.add_argument("--window", type=float, help="each step's measurement, seconds (default 20; --quick: 10)")
    p.add_argument("--warmup", type=float, help="after each step's joins, seconds (default 2 segments + 2 s)")
    p.add_argument("--segment", type=float, default=2.0, help="the server's HLS segment seconds (default 2)")
    p.add_argument("--workers", type=int, default=1, help="DIEMCAU_WORKERS (default 1: HLS is the HTTP process's)")
    p.add_argument("--loadgen-procs", type=int, default=0, help="load-generator processes (default 1, 2 above 250)")
    p.add_argument("--output", type=Path, help=f"the report whose HLS section is replaced (default {TARGETS_DOC} "
                                                "for the full run, data/bench/benchmarks-latest.md otherwise)")
    p.add_argument("--json", type=Path, help="also write the raw numbers as JSON here")
    p.add_argument("--workdir", type=Path, help="server data dir and log (default data/bench/hls-<time>)")
    opts = p.parse_args(argv)
    full = not (opts.quick or opts.steps or opts.window)
    opts.steps = sorted(opts.steps or (QUICK_STEPS if opts.quick else FULL_STEPS))
    opts.window = opts.window or (10.0 if opts.quick else 20.0)
    opts.warmup = opts.warmup if opts.warmup is not None else 2 * opts.segment + 2
    opts.loadgen_procs = opts.loadgen_procs or (1 if max(opts.steps) <= 250 else 2)
    if opts.steps[0] < 1 or opts.steps[-1] > 5000 or opts.window < 2:
        p.error("viewer counts must be 1..5000 and --window at least 2 s")
    opts.output = opts.output or (ROOT / TARGETS_DOC if full else ROOT / "data/bench/benchmarks-latest.md")
    return opts


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    opts = parse_args(argv)
    os.chdir(ROOT)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < min(hard, 65536):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    started = datetime.datetime.now().astimezone()
    workdir = opts.workdir or ROOT / "data" / "bench" / f"hls-{started.strftime('%Y%m%d-%H%M%S')}"
    workdir.mkdir(parents=True, exist_ok=True)
    command = "python -m bench.hls_viewers" + (" " + shlex.join(argv) if argv else "")
    log(f"HLS viewers: steps {opts.steps}; logs in {workdir}")
    from bench.clip import test_clip

    test_clip(**CLIP)  # encode once (cached) before the publisher needs it
    res = run(opts, workdir)
    text = section(res, opts, procstat.machine_info(), started, time.time() - started.timestamp(), command)
    print("\n" + text + "\n")
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    report = opts.output.read_text() if opts.output.exists() else "# Benchmarks\n"
    opts.output.write_text(doc_sections.put(report, text, doc_sections.HLS))
    log(f"HLS section written to {opts.output}")
    if opts.json:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(json.dumps({"command": command, "raw": res}, indent=1, default=str))
    return 1 if res.get("error") or not res["paths"] else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: child processes stopped", file=sys.stderr)
        sys.exit(130)
