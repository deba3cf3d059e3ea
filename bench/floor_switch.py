"""``python -m bench.floor_switch``: the floor-switch benchmark of issue 23.

One server (``python -m server.main`` on 127.0.0.1, media over ``DIEMCAU_WORKERS`` processes, as
``make bench`` runs it), the speaker's publisher (``bench.publisher``: the 720p30 clip over WHIP),
a connection point that behaves like its page (``bench.floor_point``: it hears the grant on the
conference WebSocket and WHIP-publishes its own 720p30 clip with its point token) and N WHEP
subscribers in the load generator (``bench.switch_watch``: ``bench.loadgen`` with a watch for one
publisher's keyframes). Then, for each of ``--rounds`` rounds:

1. a window with the speaker alone: server CPU per packet forwarded to the subscribers;
2. the chair grants the point the floor (REST, organiser token): per subscriber, the time from
   the grant's 200 to the arrival of the first packet of the point's stream;
3. a window of the same length while the point holds the floor (its picture, the hall+point mix);
4. the chair ends the floor: per subscriber, the time to the speaker's first packet again.

Before the subscribers join, the same server's CPU with no subscriber is measured for the speaker
alone and with the point on the floor (ingest, mix): the fixed costs, subtracted for the fan-out's
own cost per packet. The figures (``bench.floor_switch_report``) go to a marked section of
``docs/benchmarks.md`` (``make bench``) that ``bench.run`` carries over. Targets are reported, never
asserted. Only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench import doc_sections, procstat
from bench.floor_switch_report import fmt, section, summarize, us_per_packet
from bench.ipc import Child, call_all
from bench.run import CLIP, Cleanup, Phase, _token, _wait, align_window, log, pct, sleep_until
from server.settings import default_worker_count

ROOT = Path(__file__).resolve().parents[1]
TARGETS_DOC = "docs/benchmarks.md"
SPEAKER_CLIP = CLIP  # the fan-out benchmark's clip: keyframe every 2 s
# The point's own camera: the same size and rate, a dark flat picture and a 1 kHz tone, a keyframe
# every second, so its SPS (log2_max_frame_num) differs from the speaker's: how its packets are told apart.
POINT_CLIP = {**CLIP, "keyframe_seconds": 1.0, "tone": 1000, "luma": 30}


class FloorBench:
    """One run's processes and the chair's client; each phase of the run is a method."""

    def __init__(self, opts: argparse.Namespace, workdir: Path, cleanup: Cleanup) -> None:
        self.opts = opts
        self.workdir = workdir
        self.cleanup = cleanup
        self.counts: dict[str, dict[str, int]] = {}  # the subscribers' packets after the last window

    def start(self) -> None:
        """The server, a conference with its tokens and floor point, the two publishers' processes."""
        from bench import floor_point, publisher
        from bench.clip import test_clip
        from bench.server_process import ServerProcess

        opts, n = self.opts, self.opts.n
        self.speaker_sps, self.point_sps = signatures(test_clip(**SPEAKER_CLIP), test_clip(**POINT_CLIP))
        # Link adaptation off, as in bench.run: a loaded load generator's loss must not move subscribers
        # to another rendition (and start a transcoder) in a measurement of forwarding.
        env = {"DIEMCAU_WORKERS": str(opts.workers), "DIEMCAU_SEND_BATCHES": "gso",
               "DIEMCAU_RENDITION_ADAPTATION": "0", **dict(opts.server_env)}
        self.srv = srv = ServerProcess(self.workdir / f"floor-{n}", env=env)
        srv.start(timeout=60)
        self.cleanup.add("server", srv.stop)
        assert srv.proc is not None
        self.conf = conf = srv.create_conference("Benchmark: floor switch")
        with srv.admin() as c:
            speaker = _token(c, conf, "speaker", "Hội trường")
            chair = _token(c, conf, "organiser", "Chủ trì")
            r = c.post(f"/api/v1/conferences/{conf}/points", json={"name": "Xã Tam Hồng", "level": "commune"})
            r.raise_for_status()
            self.point_id = r.json()["id"]
            r = c.post(f"/api/v1/conferences/{conf}/points/{self.point_id}/token")
            r.raise_for_status()
            point_token = r.json()["token"]
            self.tokens = [_token(c, conf, "point", f"Điểm {i}") for i in range(n)]
        self.chair = httpx.Client(base_url=f"{srv.url}/api/v1/conferences/{conf}/",
                                  headers={"Authorization": f"Bearer {chair}"}, timeout=30)
        self.cleanup.add("chair client", self.chair.close)
        self.src = src = Child("speaker", publisher.main, srv.url, conf, speaker, SPEAKER_CLIP)
        self.cleanup.add("speaker", src.stop)
        _wait(lambda: (s := src.call("status"))["state"] == "connected" and s["sent"]["video"] > 60,
              30, "the speaker connected and sending")
        self.point = point = Child("point", floor_point.main, srv.url, conf, self.point_id, point_token, POINT_CLIP)
        self.cleanup.add("point", point.stop)
        _wait(lambda: point.call("status")["ws"] == "open", 30, "the point's WebSocket open")
        self.roots = {"server": [srv.proc.pid], "publishers": [src.pid, point.pid]}
        self.gens: list[Child] = []

    def fixed_costs(self, res: dict) -> None:
        """Server CPU with no subscriber: the speaker alone, then the point on the floor too."""
        time.sleep(self.opts.settle)
        res["fixed_speaker"] = _cpu(self.roots, self.opts.baseline)
        granted = self.grant()
        self.wait_live("the point live on the program (no subscriber)")
        res["grant_live_unloaded"] = time.time() - granted
        time.sleep(self.opts.settle)
        res["fixed_floor"] = _cpu(self.roots, self.opts.baseline)
        self.end()
        time.sleep(self.opts.settle)

    def join(self, res: dict) -> None:
        """N WHEP subscribers, their requests spread over ``--storm`` seconds; until each has its keyframe."""
        from bench import switch_watch

        opts, n = self.opts, self.opts.n
        procs = max(1, min(opts.loadgen_procs or (2 if n <= 250 else 4), n))
        self.gens = gens = [Child(f"loadgen{j}", switch_watch.main) for j in range(procs)]
        for g in gens:
            self.cleanup.add(g.name, g.stop)
        self.cleanup.add("subscribers", lambda: call_all(gens, "close", 30))
        self.roots["loadgen"] = [g.pid for g in gens]
        shares = [[(i, self.tokens[i]) for i in range(j, n, procs)] for j in range(procs)]
        call_all(gens, "prepare", 60 + n * 0.5, [{"subs": s} for s in shares])
        t0 = time.time() + 1.0
        fire = {i: t0 + opts.storm * i / max(1, n - 1) for i in range(n)}
        call_all(gens, "join", 30, [{"url": f"{self.srv.url}/whep/{self.conf}",
                                     "fire": {str(i): fire[i] for i, _ in s}} for s in shares])
        deadline = t0 + opts.storm + 30 + n * 0.05
        status: dict[str, int] = {}
        while time.time() < deadline:
            time.sleep(0.25)
            replies = call_all(gens, "status", 30)
            status = {k: sum(r[k] for r in replies) for k in ("answered", "failed", "connected", "keyframe")}
            if status["failed"] + status["keyframe"] >= n:
                break
        res["join"] = status
        log(f"floor switch N={n}: {status['keyframe']} subscribers joined, {status['failed']} failed")
        if status["keyframe"] == 0:
            raise RuntimeError(f"no subscriber received the speaker's keyframe: {status}")
        time.sleep(opts.settle)

    def round(self, k: int) -> dict:
        """A window with the speaker alone, the grant, a window with the point on the floor, the end."""
        opts, rnd = self.opts, {}
        rnd["speaker_window"] = self.window()
        rnd["grant"] = self.switch(self.point_sps, self.grant)
        self.wait_live("the point live on the program")
        time.sleep(opts.settle)
        mix0 = self.mix()
        rnd["floor_window"] = self.window()
        rnd["floor_window"]["media_after"] = self.media()
        rnd["floor_window"]["mix"] = _mix_delta(mix0, self.mix())
        rnd["end"] = self.switch(self.speaker_sps, self.end)
        rnd["point_turn"] = self.point.call("status")["turns"][-1]
        log(f"floor switch N={opts.n}, round {k + 1}: grant -> point's first packet p95 "
            f"{fmt(pct(rnd['grant']['delays'], 0.95))} s ({rnd['grant']['missing']} missed), end -> speaker p95 "
            f"{fmt(pct(rnd['end']['delays'], 0.95))} s; µs per forwarded packet: speaker alone "
            f"{fmt(us_per_packet(rnd['speaker_window']))}, point on the floor {fmt(us_per_packet(rnd['floor_window']))}")
        time.sleep(opts.settle)
        return rnd

    def server_side(self) -> dict:
        """What the server's media stats say about the conference at the end."""
        with self.srv.admin() as c:
            stats = c.get("/api/v1/media/stats").json()
        router = stats.get("routers", {}).get(self.conf, {})
        return {"stage": router.get("stage"), "keyframe_requests_sent": router.get("keyframe_requests_sent"),
                "codec_instances": stats.get("codec_instances")}

    # --- the chair and the server's view ----------------------------------------------------------------
    def post(self, path: str, body: dict | None = None) -> float:
        """A chair's request; the wall-clock time its 200 arrived."""
        r = self.chair.post(f"floor{path}", json=body)
        if r.status_code != 200:
            raise RuntimeError(f"POST floor{path}: {r.status_code} {r.text[:300]}")
        return time.time()

    def grant(self) -> float:
        return self.post("/grant", {"point_id": self.point_id, "limit_seconds": None})

    def end(self) -> float:
        """End the floor; returns once the point has closed its session (the time of the 200)."""
        done = self.post("/end")
        _wait(lambda: not self.point.call("status")["publishing"], 30, "the point's session closed")
        return done

    def media(self) -> str | None:
        r = self.chair.get("floor")
        if r.status_code != 200:
            raise RuntimeError(f"GET floor: {r.status_code} {r.text[:300]}")
        current = r.json().get("current")
        return current.get("media") if current else None

    def wait_live(self, what: str) -> None:
        """Until the server says the point's media is live; a timeout names what the point saw."""
        try:
            _wait(lambda: self.media() == "live", 30, what)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; the point: {self.point.call('status')}") from None

    def mix(self) -> dict:
        """The conference's audio mix counters (the stage's, in the media stats), {} when there is none."""
        with self.srv.admin() as c:
            router = c.get("/api/v1/media/stats").json().get("routers", {}).get(self.conf) or {}
        stage = router.get("stage") or {}
        return {**stage["mix"], "t": time.time()} if stage.get("mix") else {}

    # --- measurements ------------------------------------------------------------------------------------
    def switch(self, sps: bytes, act: Callable[[], float]) -> dict:
        """Arm every subscriber for ``sps``, act (grant or end), then wait until each has seen it:
        seconds from the action's 200 to that publisher's first packet, per subscriber."""
        gens, timeout = self.gens, self.opts.switch_timeout
        call_all(gens, "arm", 30, [{"sps": sps.hex()}] * len(gens))
        sent = time.time()
        done = act()
        deadline = done + timeout
        while True:
            replies = call_all(gens, "marks", 30)
            marks = [v for r in replies for v in r["marks"].values()]
            if all(v is not None for v in marks) or time.time() >= deadline:
                break
            time.sleep(0.2)
        call_all(gens, "marks", 30, [{"disarm": True}] * len(gens))
        delays = sorted(v - done for v in marks if v is not None)
        return {"request": done - sent, "at": done, "delays": delays, "missing": sum(1 for v in marks if v is None),
                "first": delays[0] if delays else None, "undecryptable": sum(r["undecryptable"] for r in replies),
                "connected": sum(r["connected"] for r in replies)}

    def window(self) -> dict:
        """Server CPU and the packets that reached the subscribers in one window (starting and ending
        between two of the speaker's frames, as bench.run's)."""
        gens, seconds = self.gens, self.opts.window
        st = self.src.call("status")
        w0, w1 = align_window(st["starts"]["video"], st["steps"]["video"], time.time() + 1.0, seconds)
        call_all(gens, "window", 30, [{"kinds": {}, "arrival": [w0, w1]}] * len(gens))
        phase = Phase(self.roots)
        sleep_until(w0)
        phase.start()
        sleep_until(w1)
        out = phase.stop()
        time.sleep(0.3)  # what arrived before w1 is drained (every 10 ms) before it is counted
        before = self.counts
        self.counts = after = {k: v for r in call_all(gens, "counts", 30) for k, v in r["packets"].items()}
        per_sub = [sum(v.values()) - sum(before.get(i, {}).values()) for i, v in after.items()]
        out["length"] = w1 - w0
        out["packets"] = sum(per_sub)
        out["sub_pps"] = [x / out["length"] for x in per_sub]
        out["kind_pps"] = {kind: sum(v.get(kind, 0) - before.get(i, {}).get(kind, 0) for i, v in after.items())
                           / out["length"] / max(1, len(after)) for kind in ("video", "audio")}
        out["renditions"] = self.renditions()
        return out

    def renditions(self) -> dict:
        """The subscribers' renditions and the conference's transcoder (CPU that is not fan-out: the
        server's link adaptation moves a subscriber whose reports show loss to a low rendition)."""
        with self.srv.admin() as c:
            stats = c.get("/api/v1/media/stats").json()
        by: dict[str, int] = {}
        for consumer in stats.get("consumers", {}).values():
            if consumer.get("conference") == self.conf:
                by[consumer.get("rendition", "full")] = by.get(consumer.get("rendition", "full"), 0) + 1
        ingest = next((w for w in stats.get("workers", []) if w.get("index") == 0), {})
        return {"subscribers": by, "transcoder": (ingest.get("transcoders") or {}).get(self.conf)}


def run(opts: argparse.Namespace, workdir: Path) -> dict:
    """One benchmark run (raw results); every child process is stopped before it returns."""
    res: dict[str, Any] = {"n": opts.n, "rounds": [], "load_start": os.getloadavg()}
    cleanup = Cleanup()
    try:
        bench = FloorBench(opts, workdir, cleanup)
        bench.start()
        bench.fixed_costs(res)
        bench.join(res)
        for k in range(opts.rounds):
            res["rounds"].append(bench.round(k))
        res["server"] = bench.server_side()
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - reported in the section
        res["error"] = f"{type(exc).__name__}: {exc}"
        res["trace"] = traceback.format_exc()
        log(f"floor switch N={opts.n}: FAILED: {res['error']}")
    finally:
        cleanup.run()
        res["load_end"] = os.getloadavg()
    return res


def signatures(speaker: Any, point: Any) -> tuple[bytes, bytes]:
    """The two clips' SPS, by which a subscriber tells whose keyframe reached it (they must differ)."""
    from bench.switch_watch import clip_sps

    a, b = clip_sps(speaker.video), clip_sps(point.video)
    if a == b:
        raise RuntimeError("the speaker's and the point's clips have the same SPS: their keyframes cannot be told apart")
    return a, b


def _mix_delta(before: dict, after: dict) -> dict:
    """Packets per second the mix made between two readings, and the ticks it skipped (its loop was
    late by more than its buffer)."""
    if not before or not after:
        return {}
    return {"pps": (after["packets"] - before["packets"]) / (after["t"] - before["t"]),
            "late_ticks": after["late_ticks"] - before["late_ticks"]}


def _cpu(roots: dict[str, list[int]], seconds: float) -> dict:
    """CPU of the process groups over ``seconds``, counted as the windows count it (/proc ticks)."""
    phase = Phase(roots)
    phase.start()
    time.sleep(seconds)
    return phase.stop()


# --- command line ---------------------------------------------------------------------------------
def _env(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("DIEMCAU_"):
        raise argparse.ArgumentTypeError("expected DIEMCAU_NAME=VALUE")
    return name, value


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.floor_switch", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="N=50, 2 rounds, 5 s windows")
    p.add_argument("--n", type=int, help="WHEP subscribers (default 250; --quick: 50)")
    p.add_argument("--rounds", type=int, help="grant/end rounds (default 3; --quick: 2)")
    p.add_argument("--window", type=float, help="each CPU window, seconds (default 10; --quick: 5)")
    p.add_argument("--baseline", type=float, help="each no-subscriber measurement, seconds (default: --window)")
    p.add_argument("--storm", type=float, default=4.0, help="the subscribers' WHEP requests over this many seconds")
    p.add_argument("--settle", type=float, default=2.0, help="pause between phases, seconds (default 2)")
    p.add_argument("--switch-timeout", type=float, default=10.0,
                   help="how long a subscriber may take to switch before it counts as never seen (default 10 s)")
    p.add_argument("--workers", type=int, default=0, help="DIEMCAU_WORKERS (default: the server's, as make bench)")
    p.add_argument("--server-env", action="append", default=[], type=_env, metavar="NAME=VALUE",
                   help="a setting for the server, e.g. DIEMCAU_KEYFRAME_REQUEST_INTERVAL=0.5 (repeatable)")
    p.add_argument("--loadgen-procs", type=int, default=0, help="load generator processes (default 2, 4 above N=250)")
    p.add_argument("--output", type=Path, help=f"the report whose floor section is replaced (default {TARGETS_DOC} "
                                                "for the full run, data/bench/benchmarks-latest.md otherwise)")
    p.add_argument("--json", type=Path, help="also write the raw numbers as JSON here")
    p.add_argument("--workdir", type=Path, help="server data dir and log (default data/bench/floor-<time>)")
    opts = p.parse_args(argv)
    full = not (opts.quick or opts.n or opts.rounds or opts.window)
    opts.n = opts.n or (50 if opts.quick else 250)
    opts.rounds = opts.rounds or (2 if opts.quick else 3)
    opts.window = opts.window or (5.0 if opts.quick else 10.0)
    opts.baseline = opts.baseline or opts.window
    opts.workers = opts.workers or default_worker_count()
    if not 1 <= opts.n <= 2000 or opts.rounds < 1 or opts.window < 1:
        p.error("--n must be 1..2000, --rounds at least 1, --window at least 1 s")
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
    workdir = opts.workdir or ROOT / "data" / "bench" / f"floor-{started.strftime('%Y%m%d-%H%M%S')}"
    workdir.mkdir(parents=True, exist_ok=True)
    command = "python -m bench.floor_switch" + (" " + shlex.join(argv) if argv else "")
    machine = procstat.machine_info()
    log(f"floor switch: N={opts.n}, {opts.rounds} rounds; logs in {workdir}")
    from bench.clip import test_clip

    test_clip(**SPEAKER_CLIP)  # encode once (cached) before the children need them
    test_clip(**POINT_CLIP)
    res = run(opts, workdir)
    summary = summarize(res)
    text = section(summary, opts, machine, started, time.time() - started.timestamp(), command)
    print("\n" + text + "\n")
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    report = opts.output.read_text() if opts.output.exists() else "# Benchmarks\n"
    opts.output.write_text(doc_sections.put(report, text, doc_sections.FLOOR))
    log(f"floor section written to {opts.output}")
    if opts.json:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(json.dumps({"machine": machine, "command": command, "summary": summary, "raw": res},
                                        indent=1, default=str))
    return 1 if summary.get("error") or not summary["rounds_done"] else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: child processes stopped", file=sys.stderr)
        sys.exit(130)
