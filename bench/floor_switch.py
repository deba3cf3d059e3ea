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
own cost per packet. The figures go to a marked section of ``docs/benchmarks.md`` (``make bench``)
that ``bench.run`` carries over. Targets are reported, never asserted. Only 127.0.0.1.
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
from pathlib import Path
from typing import Any, Callable

import httpx

from bench import doc_sections, procstat
from bench.ipc import Child, call_all
from bench.run import CLIP, Cleanup, Phase, _token, _wait, align_window, log, measure, pct, sleep_until
from server.settings import default_worker_count

ROOT = Path(__file__).resolve().parents[1]
TARGETS_DOC = "docs/benchmarks.md"
SPEAKER_CLIP = CLIP  # the fan-out benchmark's clip: keyframe every 2 s
# The point's own camera: the same size and rate, a dark flat picture and a 1 kHz tone, a keyframe
# every second, so its SPS (log2_max_frame_num) differs from the speaker's: how its packets are told apart.
POINT_CLIP = {**CLIP, "keyframe_seconds": 1.0, "tone": 1000, "luma": 30}
TARGET_P95 = 1.5  # seconds, grant -> the point's first packet at the subscribers
TOLERANCE = 0.10  # "does not change": floor window's fan-out cost per packet within 10 % of the speaker's


# --- the run -------------------------------------------------------------------------------------
def run(opts: argparse.Namespace, workdir: Path) -> dict:
    """One benchmark run; every child process is stopped before it returns."""
    from bench import floor_point, publisher, switch_watch
    from bench.clip import test_clip
    from bench.server_process import ServerProcess

    n = opts.n
    res: dict[str, Any] = {"n": n, "rounds": [], "load_start": os.getloadavg()}
    cleanup = Cleanup()
    try:
        speaker_sps, point_sps = signatures(test_clip(**SPEAKER_CLIP), test_clip(**POINT_CLIP))
        srv = ServerProcess(workdir / f"floor-{n}", env={"DIEMCAU_WORKERS": str(opts.workers),
                                                          "DIEMCAU_SEND_BATCHES": "gso"})
        srv.start(timeout=60)
        cleanup.add("server", srv.stop)
        assert srv.proc is not None
        root = srv.proc.pid
        conf = srv.create_conference("Benchmark: floor switch")
        with srv.admin() as c:
            speaker = _token(c, conf, "speaker", "Hội trường")
            chair_token = _token(c, conf, "organiser", "Chủ trì")
            r = c.post(f"/api/v1/conferences/{conf}/points", json={"name": "Xã Tam Hồng", "level": "commune"})
            r.raise_for_status()
            point_id = r.json()["id"]
            r = c.post(f"/api/v1/conferences/{conf}/points/{point_id}/token")
            r.raise_for_status()
            point_token = r.json()["token"]
            tokens = [_token(c, conf, "point", f"Điểm {i}") for i in range(n)]
        chair = httpx.Client(base_url=f"{srv.url}/api/v1/conferences/{conf}/",
                             headers={"Authorization": f"Bearer {chair_token}"}, timeout=30)
        cleanup.add("chair client", chair.close)
        res["server_processes"] = len(procstat.descendants(root))

        src = Child("speaker", publisher.main, srv.url, conf, speaker, SPEAKER_CLIP)
        cleanup.add("speaker", src.stop)
        _wait(lambda: (s := src.call("status"))["state"] == "connected" and s["sent"]["video"] > 60,
              30, "the speaker connected and sending")
        point = Child("point", floor_point.main, srv.url, conf, point_id, point_token, POINT_CLIP)
        cleanup.add("point", point.stop)
        _wait(lambda: point.call("status")["ws"] == "open", 30, "the point's WebSocket open")
        roots = {"server": [root], "publishers": [src.pid, point.pid]}

        # --- fixed costs: no subscriber --------------------------------------------------------------
        time.sleep(opts.settle)
        res["fixed_speaker"] = measure(roots, opts.baseline)
        grant_at = _post(chair, "/grant", {"point_id": point_id, "limit_seconds": None})
        _wait_live(chair, point, "the point live on the program (no subscriber)")
        res["grant_live_unloaded"] = time.time() - grant_at
        time.sleep(opts.settle)
        res["fixed_floor"] = measure(roots, opts.baseline)
        _post(chair, "/end")
        _wait(lambda: not point.call("status")["publishing"], 30, "the point's session closed")
        time.sleep(opts.settle)

        # --- subscribers ---------------------------------------------------------------------------
        procs = max(1, min(opts.loadgen_procs or (2 if n <= 250 else 4), n))
        gens = [Child(f"loadgen{j}", switch_watch.main) for j in range(procs)]
        for g in gens:
            cleanup.add(g.name, g.stop)
        cleanup.add("subscribers", lambda: call_all(gens, "close", 30))
        roots["loadgen"] = [g.pid for g in gens]
        shares = [[(i, tokens[i]) for i in range(j, n, procs)] for j in range(procs)]
        call_all(gens, "prepare", 60 + n * 0.5, [{"subs": s} for s in shares])
        t0 = time.time() + 1.0
        fire = {i: t0 + opts.storm * i / max(1, n - 1) for i in range(n)}
        call_all(gens, "join", 30, [{"url": f"{srv.url}/whep/{conf}", "fire": {str(i): fire[i] for i, _ in s}}
                                    for s in shares])
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

        # --- rounds --------------------------------------------------------------------------------------
        counts: dict[str, dict[str, int]] = {}
        for k in range(opts.rounds):
            rnd: dict[str, Any] = {}
            res["rounds"].append(rnd)
            rnd["speaker_window"], counts = _window(roots, gens, src, opts.window, counts)
            rnd["grant"] = _switch(gens, point_sps, lambda: _post(chair, "/grant", {"point_id": point_id,
                                                                                     "limit_seconds": None}),
                                   opts.switch_timeout)
            _wait_live(chair, point, "the point live on the program")
            time.sleep(opts.settle)
            rnd["floor_window"], counts = _window(roots, gens, src, opts.window, counts)
            rnd["floor_window"]["media_after"] = _media(chair)
            rnd["end"] = _switch(gens, speaker_sps, lambda: _post(chair, "/end"), opts.switch_timeout)
            _wait(lambda: not point.call("status")["publishing"], 30, "the point's session closed")
            rnd["point_turn"] = point.call("status")["turns"][-1]
            log(f"floor switch N={n}, round {k + 1}: grant -> point's first packet p95 "
                f"{_fmt(pct(rnd['grant']['delays'], 0.95))} s ({rnd['grant']['missing']} missed), end -> speaker p95 "
                f"{_fmt(pct(rnd['end']['delays'], 0.95))} s; µs per forwarded packet: speaker alone "
                f"{_fmt(_us(rnd['speaker_window']), '{:.2f}')}, point on the floor {_fmt(_us(rnd['floor_window']), '{:.2f}')}")
            time.sleep(opts.settle)
        with srv.admin() as c:
            stats = c.get("/api/v1/media/stats").json()
        router = stats.get("routers", {}).get(conf, {})
        res["server"] = {"stage": router.get("stage"), "keyframe_requests_sent": router.get("keyframe_requests_sent"),
                         "codec_instances": stats.get("codec_instances")}
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - reported in the section
        res["error"] = f"{type(exc).__name__}: {exc}"
        res["trace"] = traceback.format_exc()
        log(f"floor switch N={n}: FAILED: {res['error']}")
    finally:
        cleanup.run()
        res["load_end"] = os.getloadavg()
    return res


def signatures(speaker: Any, point: Any) -> tuple[bytes, bytes]:
    """The two clips' SPS, by which a subscriber tells whose keyframe reached it."""
    from bench.switch_watch import clip_sps

    a, b = clip_sps(speaker.video), clip_sps(point.video)
    if a == b:
        raise RuntimeError("the speaker's and the point's clips have the same SPS: their keyframes cannot be told apart")
    return a, b


def _post(chair: httpx.Client, path: str, body: dict | None = None) -> float:
    """A chair's request; the wall-clock time its 200 arrived."""
    r = chair.post(f"floor{path}", json=body)
    if r.status_code != 200:
        raise RuntimeError(f"POST floor{path}: {r.status_code} {r.text[:300]}")
    return time.time()


def _media(chair: httpx.Client) -> str | None:
    r = chair.get("floor")
    if r.status_code != 200:
        raise RuntimeError(f"GET floor: {r.status_code} {r.text[:300]}")
    current = r.json().get("current")
    return current.get("media") if current else None


def _wait_live(chair: httpx.Client, point: Child, what: str) -> None:
    """Until the server says the point's media is live; a timeout names what the point saw."""
    try:
        _wait(lambda: _media(chair) == "live", 30, what)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; the point: {point.call('status')}") from None


def _switch(gens: list[Child], sps: bytes, act: Callable[[], float], timeout: float) -> dict:
    """Arm every subscriber for ``sps``, act (grant or end), then wait until each has seen it:
    seconds from the action's 200 to that publisher's first packet, per subscriber."""
    call_all(gens, "arm", 30, [{"sps": sps.hex()}] * len(gens))
    sent = time.time()
    done = act()
    deadline = done + timeout
    while True:
        time.sleep(0.2)
        replies = call_all(gens, "marks", 30, [{"disarm": time.time() >= deadline}] * len(gens))
        marks = [v for r in replies for v in r["marks"].values()]
        if all(v is not None for v in marks) or time.time() >= deadline:
            if time.time() < deadline:
                call_all(gens, "marks", 30, [{"disarm": True}] * len(gens))
            break
    delays = sorted(v - done for v in marks if v is not None)
    return {"request": done - sent, "at": done, "delays": delays, "missing": sum(1 for v in marks if v is None),
            "first": delays[0] if delays else None,
            "undecryptable": sum(r["undecryptable"] for r in replies),
            "connected": sum(r["connected"] for r in replies)}


def _window(roots: dict[str, list[int]], gens: list[Child], src: Child, seconds: float,
            before: dict[str, dict[str, int]]) -> tuple[dict, dict[str, dict[str, int]]]:
    """Server CPU and the packets that reached the subscribers in one window (between two of the
    speaker's frames, as bench.run's); ``before``: the subscribers' counts after the last window."""
    st = src.call("status")
    w0, w1 = align_window(st["starts"]["video"], st["steps"]["video"], time.time() + 1.0, seconds)
    call_all(gens, "window", 30, [{"kinds": {}, "arrival": [w0, w1]}] * len(gens))
    phase = Phase(roots)
    sleep_until(w0)
    phase.start()
    sleep_until(w1)
    out = phase.stop()
    time.sleep(0.3)  # what arrived before w1 is drained (every 10 ms) before it is counted
    after = {k: v for r in call_all(gens, "counts", 30) for k, v in r["packets"].items()}
    per_sub = [sum(v.values()) - sum(before.get(i, {}).values()) for i, v in after.items()]
    out["length"] = w1 - w0
    out["packets"] = sum(per_sub)
    out["sub_pps"] = [x / out["length"] for x in per_sub]
    out["kind_pps"] = {kind: sum(v.get(kind, 0) - before.get(i, {}).get(kind, 0) for i, v in after.items())
                       / out["length"] / max(1, len(after)) for kind in ("video", "audio")}
    return out, after


def _us(window: dict, fixed_cores: float = 0.0) -> float | None:
    """µs of server CPU per packet forwarded in ``window``, less ``fixed_cores`` (no subscriber)."""
    if not window.get("packets"):
        return None
    return (window["server"]["cpu_s"] - fixed_cores * window["seconds"]) * 1e6 / window["packets"]


# --- figures -------------------------------------------------------------------------------------
def summarize(res: dict) -> dict:
    s: dict[str, Any] = {"n": res["n"], "error": res.get("error"), "join": res.get("join"),
                         "load": [res.get("load_start"), res.get("load_end")],
                         "grant_live_unloaded": res.get("grant_live_unloaded"), "server": res.get("server")}
    rounds = [r for r in res.get("rounds", []) if "end" in r]
    s["rounds_done"] = len(rounds)
    fixed_speaker = res.get("fixed_speaker", {}).get("server", {}).get("cores")
    fixed_floor = res.get("fixed_floor", {}).get("server", {}).get("cores")
    s["fixed"] = {"speaker": fixed_speaker, "floor": fixed_floor}
    for key in ("grant", "end"):
        delays = [d for r in rounds for d in r[key]["delays"]]
        from_post = [d + r[key]["request"] for r in rounds for d in r[key]["delays"]]
        s[key] = {"p50": pct(delays, 0.5), "p95": pct(delays, 0.95), "max": max(delays) if delays else None,
                  "p95_from_post": pct(from_post, 0.95),
                  "samples": len(delays), "missing": sum(r[key]["missing"] for r in rounds),
                  "undecryptable": sum(r[key]["undecryptable"] for r in rounds),
                  "request": [r[key]["request"] for r in rounds],
                  "per_round": [[pct(r[key]["delays"], 0.5), pct(r[key]["delays"], 0.95),
                                 max(r[key]["delays"]) if r[key]["delays"] else None, r[key]["missing"]]
                                for r in rounds]}
    steps = []
    for r in rounds:  # the point's side of each grant, from the grant's 200
        t, at = r.get("point_turn") or {}, r["grant"]["at"]
        steps.append({k: (t[k] - at if t.get(k) else None) for k in ("notified", "answered", "connected",
                                                                       "first_frame", "live")}
                     | {"keyframe_requested": t["keyframe_requested"][0] - at if t.get("keyframe_requested") else None,
                        "first_at_subscriber": r["grant"]["first"], "keyframe_requests": t.get("keyframe_requests"),
                        "error": t.get("error")})
    s["steps"] = steps
    windows = []
    for i, r in enumerate(rounds):
        for state, key, fixed in (("speaker alone", "speaker_window", fixed_speaker),
                                  ("point on the floor", "floor_window", fixed_floor)):
            w = r[key]
            subs = w["sub_pps"]
            windows.append({
                "round": i + 1, "state": state, "seconds": w["length"], "server_cores": w["server"]["cores"],
                "cpu_s": w["server"]["cpu_s"], "packets": w["packets"], "fixed": fixed,
                "pps_mean": sum(subs) / len(subs) if subs else None, "pps_min": min(subs) if subs else None,
                "kind_pps": w.get("kind_pps", {}),
                "us_per_pkt": _us(w), "us_per_pkt_net": _us(w, fixed) if fixed is not None else None,
                "loadgen_cores": w.get("loadgen", {}).get("cores"), "busy": w["machine_busy_cores"],
                "foreign": w["foreign_cores"], "media_after": w.get("media_after"),
            })
    s["windows"] = windows
    for state in ("speaker alone", "point on the floor"):
        ws = [w for w in windows if w["state"] == state]
        cpu, pk, secs = sum(w["cpu_s"] for w in ws), sum(w["packets"] for w in ws), sum(w["seconds"] for w in ws)
        fixed = fixed_speaker if state == "speaker alone" else fixed_floor
        s[state] = {"us_per_pkt": cpu * 1e6 / pk if pk else None,
                    "us_per_pkt_net": (cpu - fixed * secs) * 1e6 / pk if pk and fixed is not None else None,
                    "spread": _spread([w["us_per_pkt"] for w in ws])}
    a, b = s["speaker alone"], s["point on the floor"]
    s["ratio"] = b["us_per_pkt"] / a["us_per_pkt"] if a["us_per_pkt"] and b["us_per_pkt"] else None
    s["ratio_net"] = b["us_per_pkt_net"] / a["us_per_pkt_net"] if a["us_per_pkt_net"] and b["us_per_pkt_net"] else None
    return s


def _spread(values: list[float | None]) -> float | None:
    """(max - min) / mean of the rounds' values: how much the same state varied in this run."""
    v = [x for x in values if x]
    return (max(v) - min(v)) / (sum(v) / len(v)) if len(v) > 1 else None


def _fmt(v: Any, fmt: str = "{:.2f}") -> str:
    return "–" if v is None else fmt.format(v)


# --- the report section -------------------------------------------------------------------------------
def section(s: dict, opts: argparse.Namespace, machine: dict, started: datetime.datetime, elapsed: float,
            command: str) -> str:
    start, end = doc_sections.FLOOR
    load = " / ".join(_fmt(x[0], "{:.2f}") if x else "–" for x in s["load"])
    lines = [
        start,
        "## Floor switch (issue 23: bench/floor_switch.py)",
        "",
        f"- **Date:** {started.strftime('%Y-%m-%d %H:%M %Z').strip()} (took {elapsed / 60:.1f} min); "
        f"load average (1 min) at the start / end: {load} on {machine['cores']} cores ({machine['cpu_model']})",
        f"- **Command:** `{command}`",
        f"- **Settings:** N={s['n']} WHEP subscribers in {opts.loadgen_procs or (2 if s['n'] <= 250 else 4)} "
        f"load-generator processes; DIEMCAU_WORKERS={opts.workers}; {opts.rounds} rounds; windows of "
        f"{opts.window:g} s; both publishers 1280×720 30 fps ~2 Mbit/s H.264 + Opus; all traffic on 127.0.0.1",
        "",
    ]
    if s.get("error"):
        lines += [f"**The run failed:** `{s['error']}` (after {s['rounds_done']} complete rounds; the server log is "
                  f"in the run's work directory).", ""]
    g, e = s.get("grant"), s.get("end")
    if g and g["samples"]:
        ok = g["p95"] < TARGET_P95 and g["missing"] == 0
        r = s.get("ratio_net")
        lines += [
            "### Targets (reported, never asserted)",
            "",
            f"- Grant → the point's first packet at each of the {s['n']} subscribers, p95 < {TARGET_P95:g} s: "
            f"p95 {_fmt(g['p95'])} s over {g['samples']} switches ({s['rounds_done']} grants × subscribers), "
            f"{g['missing']} never seen — {'met' if ok else '**not met**'}",
            f"- Fan-out CPU per forwarded packet unchanged while the point holds the floor (within ±{TOLERANCE:.0%}): "
            f"{_fmt(s['speaker alone']['us_per_pkt_net'])} µs with the speaker alone, "
            f"{_fmt(s['point on the floor']['us_per_pkt_net'])} µs with the point on the floor (fixed costs "
            f"subtracted), ratio {_fmt(r, '{:.3f}')} — "
            + ("–" if r is None else ("met" if abs(r - 1) <= TOLERANCE else "**not met**"))
            + f"; all server CPU included: ratio {_fmt(s.get('ratio'), '{:.3f}')}",
            "",
            "### Switch times, seconds from the chair's 200",
            "",
            "| switch | p50 | p95 | max | samples | never seen | per round p50 / p95 / max (never seen) | chair's POST → 200 "
            "| p95 from the POST |",
            "|---|---:|---:|---:|---:|---:|---|---|---:|",
        ]
        for label, x in (("grant → the point's first packet", g), ("end → the speaker's first packet", e)):
            lines.append(
                f"| {label} | {_fmt(x['p50'])} | {_fmt(x['p95'])} | {_fmt(x['max'])} | {x['samples']} | {x['missing']} "
                f"| {'; '.join(' / '.join(_fmt(v) for v in pr[:3]) + f' ({pr[3]})' for pr in x['per_round'])} "
                f"| {', '.join(_fmt(v, '{:.3f}') for v in x['request'])} | {_fmt(x['p95_from_post'])} |")
        lines += [
            "",
            "Where a grant's time goes (the point process's wall clock, seconds after the grant's 200; "
            "\"live\": the point's `floor.state` says `media: live`, sent when the ingest's program switched):",
            "",
            "| round | point hears the grant (WebSocket) | WHIP answered | ICE+DTLS connected | first frame sent "
            "| first keyframe request heard | server: live | first packet at a subscriber "
            "| keyframe requests the point answered |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for i, st in enumerate(s["steps"]):
            lines.append(f"| {i + 1} | " + " | ".join(_fmt(st[k], "{:.3f}") for k in (
                "notified", "answered", "connected", "first_frame", "keyframe_requested", "live", "first_at_subscriber"))
                + f" | {st['keyframe_requests'] if st['keyframe_requests'] is not None else '–'} |")
        if s.get("grant_live_unloaded") is not None:
            lines += ["", f"With no subscriber (before they joined), grant → the server's `live` took "
                          f"{s['grant_live_unloaded']:.2f} s (polled every 0.25 s)."]
        lines += [
            "",
            "### Fan-out CPU per forwarded packet",
            "",
            f"Fixed costs, the same server with no subscriber: speaker alone {_fmt(s['fixed']['speaker'], '{:.3f}')} "
            f"cores; the point on the floor {_fmt(s['fixed']['floor'], '{:.3f}')} cores (both ingests and the mix).",
            "",
            "| round | program | server cores | pkt/s per subscriber: video + audio (min of the sums) "
            "| µs server CPU per forwarded pkt "
            "| µs per pkt, fixed costs subtracted | load gen cores | machine busy, cores (other processes) |",
            "|---:|---|---:|---|---:|---:|---:|---|",
        ]
        for w in s["windows"]:
            warn = "" if w["state"] == "speaker alone" or w["media_after"] == "live" else f" ⚠ {w['media_after']} at the end"
            lines.append(
                f"| {w['round']} | {w['state']}{warn} | {w['server_cores']:.2f} "
                f"| {_fmt(w['kind_pps'].get('video'), '{:.0f}')} + {_fmt(w['kind_pps'].get('audio'), '{:.0f}')} "
                f"({_fmt(w['pps_min'], '{:.0f}')}) | {_fmt(w['us_per_pkt'])} | {_fmt(w['us_per_pkt_net'])} "
                f"| {_fmt(w['loadgen_cores'])} | {w['busy']:.2f} ({w['foreign']:.2f}) |")
        for state in ("speaker alone", "point on the floor"):
            x = s[state]
            lines.append(f"| all | {state} | | | {_fmt(x['us_per_pkt'])} | {_fmt(x['us_per_pkt_net'])} | | "
                         f"rounds spread {_fmt(None if x['spread'] is None else 100 * x['spread'], '{:.1f}')} % |")
        server = s.get("server") or {}
        stage = server.get("stage") or {}
        lines += ["", f"Server side at the end: {stage.get('switches', '–')} program switches (the point on and off), "
                      f"{server.get('keyframe_requests_sent', '–')} keyframe requests sent upstream, codec instances "
                      f"{server.get('codec_instances') or 'none'}."]
    lines += ["", METHOD, end]
    return "\n".join(lines)


METHOD = """\
**Method.** *Switch time*: before each grant (and each end) every subscriber is armed with the SPS
of the publisher it should switch to; the load generator then decrypts the first packet of each
video frame until one carries that SPS (`bench/switch_watch.py`). The router switches a subscriber
at the new publisher's keyframe, whose first packet carries its SPS, so the kernel arrival time of
that packet (SO_TIMESTAMPNS) minus the wall-clock time the chair's 200 arrived is the switch time:
it includes the point hearing the grant over the WebSocket, its WHIP exchange and ICE/DTLS, the
stage seeing its packets flow (checked every 0.2 s), the keyframe request and the point's answer,
and the fan-out to every subscriber. The two clips differ only in content and keyframe interval
(which changes the SPS); the point, like the speaker, answers a keyframe request with its clip's
next keyframe. *Fan-out cost*: server CPU (utime+stime of every server process over the window)
divided by the RTP packets that arrived at the subscribers in the window, as `bench/run.py`
computes it; "fixed costs subtracted" first removes the same server's CPU with the same publishers
and no subscriber (the speaker's ingest; with the point: both ingests, the mix's Opus decode and
encode, measured before the subscribers joined). Windows with the speaker alone and with the
point on the floor alternate, so a change of the machine's load hits both. The load generator,
the publishers and the server share the machine's cores; "other processes" is CPU used by
processes outside the benchmark."""


# --- command line ---------------------------------------------------------------------------------
def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.floor_switch", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="N=50, 2 rounds, 5 s windows")
    p.add_argument("--n", type=int, help="WHEP subscribers (default 250; --quick: 50)")
    p.add_argument("--rounds", type=int, help="grant/end rounds (default 3; --quick: 2)")
    p.add_argument("--window", type=float, help="each CPU window, seconds (default 10; --quick: 5)")
    p.add_argument("--baseline", type=float, default=5.0, help="the no-subscriber measurements, seconds (default 5)")
    p.add_argument("--storm", type=float, default=4.0, help="the subscribers' WHEP requests over this many seconds")
    p.add_argument("--settle", type=float, default=2.0, help="pause between phases, seconds (default 2)")
    p.add_argument("--switch-timeout", type=float, default=10.0,
                   help="how long a subscriber may take to switch before it counts as never seen (default 10 s)")
    p.add_argument("--workers", type=int, default=0, help="DIEMCAU_WORKERS (default: the server's, as make bench)")
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
