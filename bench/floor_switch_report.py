"""The floor-switch benchmark's figures (``summarize``) and its section of docs/benchmarks.md (``section``).

``bench.floor_switch`` measures; this turns its raw results into the switch-time percentiles, where a
grant's time goes, and the fan-out cost per packet of the two programs (speaker alone, point on the
floor) with their ratio, and renders them between ``doc_sections.FLOOR``'s markers.
"""

from __future__ import annotations

import argparse
import datetime
import math
from typing import Any

from bench import doc_sections
from bench.run import pct

TARGET_P95 = 1.5  # seconds, grant -> the point's first packet at the subscribers (issue 23)
TOLERANCE = 0.10  # "does not change": the floor's fan-out cost per packet within 10 % of the speaker's


def us_per_packet(window: dict, fixed_cores: float = 0.0) -> float | None:
    """µs of server CPU per packet forwarded in ``window``, less ``fixed_cores`` (no subscriber)."""
    if not window.get("packets"):
        return None
    return (window["server"]["cpu_s"] - fixed_cores * window["seconds"]) * 1e6 / window["packets"]


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
        # a subscriber that never saw the switch counts as the slowest: the percentiles are over all N
        delays = [d for r in rounds for d in r[key]["delays"]]
        every = delays + [math.inf] * sum(r[key]["missing"] for r in rounds)
        from_post = [d + r[key]["request"] for r in rounds for d in r[key]["delays"]]
        from_post += [math.inf] * (len(every) - len(delays))
        s[key] = {"p50": _finite(pct(every, 0.5)), "p95": _finite(pct(every, 0.95)),
                  "max": _finite(max(every)) if every else None,
                  "p95_from_post": _finite(pct(from_post, 0.95)),
                  "samples": len(delays), "missing": sum(r[key]["missing"] for r in rounds),
                  "undecryptable": sum(r[key]["undecryptable"] for r in rounds),
                  "request": [r[key]["request"] for r in rounds],
                  "per_round": [[_finite(pct(x, 0.5)), _finite(pct(x, 0.95)), _finite(max(x)) if x else None,
                                 r[key]["missing"]]
                                for r in rounds for x in [r[key]["delays"] + [math.inf] * r[key]["missing"]]]}
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
                "us_per_pkt": us_per_packet(w), "us_per_pkt_net": us_per_packet(w, fixed) if fixed is not None else None,
                "loadgen_cores": w.get("loadgen", {}).get("cores"), "busy": w["machine_busy_cores"],
                "foreign": w["foreign_cores"], "media_after": w.get("media_after"), "mix": w.get("mix"),
                "renditions": w.get("renditions") or {},
                "rcvbuf_errors": (w.get("udp_errors") or {}).get("RcvbufErrors", 0),
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


def _finite(v: float | None) -> float | None:
    """None for a percentile that falls on subscribers that never switched (shown as –)."""
    return None if v is None or math.isinf(v) else v


def _spread(values: list[float | None]) -> float | None:
    """(max - min) / mean of the rounds' values: how much the same state varied in this run."""
    v = [x for x in values if x]
    return (max(v) - min(v)) / (sum(v) / len(v)) if len(v) > 1 else None


def _mix_cell(mix: dict | None) -> str:
    """The audio mix's packets per second and skipped ticks in a window (empty: no mix then)."""
    return f"{mix['pps']:.1f} ({mix['late_ticks']})" if mix else ""


def _rendition_cell(r: dict) -> str:
    """Subscribers moved off the full rendition by the end of a window, and the transcoder's CPU."""
    if not r:
        return ""
    moved = {k: v for k, v in (r.get("subscribers") or {}).items() if k != "full"}
    t = r.get("transcoder")
    return (", ".join(f"{v} {k}" for k, v in moved.items()) or "0") + (
        f"; ⚠ transcoding, {t.get('cpu_share', 0):.2f} cores" if t else "; none")


def fmt(v: Any, pattern: str = "{:.2f}") -> str:
    """A number for the report (– when missing)."""
    return "–" if v is None else pattern.format(v)


# --- the report section -------------------------------------------------------------------------------
def section(s: dict, opts: argparse.Namespace, machine: dict, started: datetime.datetime, elapsed: float,
            command: str) -> str:
    start, end = doc_sections.FLOOR
    load = " / ".join(fmt(x[0], "{:.2f}") if x else "–" for x in s["load"])
    lines = [
        start,
        "## Floor switch (issue 23: bench/floor_switch.py)",
        "",
        f"- **Date:** {started.strftime('%Y-%m-%d %H:%M %Z').strip()} (took {elapsed / 60:.1f} min); "
        f"load average (1 min) at the start / end: {load} on {machine['cores']} cores ({machine['cpu_model']})",
        f"- **Command:** `{command}`",
        f"- **Settings:** N={s['n']} WHEP subscribers in {opts.loadgen_procs or (2 if s['n'] <= 250 else 4)} "
        f"load-generator processes; "
        + ", ".join([f"DIEMCAU_WORKERS={opts.workers}", "DIEMCAU_RENDITION_ADAPTATION=0"]
                    + [f"{k}={v}" for k, v in getattr(opts, "server_env", [])])
        + f"; {opts.rounds} rounds; windows of "
        f"{opts.window:g} s; both publishers 1280×720 30 fps ~2 Mbit/s H.264 + Opus; all traffic on 127.0.0.1",
        "",
    ]
    if s.get("error"):
        first = s["error"].splitlines()[0].replace("`", "'")[:300]
        lines += [f"**The run failed:** `{first}` (after {s['rounds_done']} complete rounds; the server log is "
                  f"in the run's work directory).", ""]
    g, e = s.get("grant"), s.get("end")
    if g and g["samples"] + g["missing"]:
        ok = g["p95"] is not None and g["p95"] < TARGET_P95
        r = s.get("ratio_net")
        lines += [
            "### Targets (reported, never asserted)",
            "",
            f"- Grant → the point's first packet at each of the {s['n']} subscribers, p95 < {TARGET_P95:g} s: "
            f"p95 {fmt(g['p95'])} s over {g['samples'] + g['missing']} switches ({s['rounds_done']} grants × "
            f"subscribers), {g['missing']} never seen within {opts.switch_timeout:g} s (counted as slowest) — "
            f"{'met' if ok else '**not met**'}",
            f"- Fan-out CPU per forwarded packet unchanged while the point holds the floor (within ±{TOLERANCE:.0%}): "
            f"{fmt(s['speaker alone']['us_per_pkt_net'])} µs with the speaker alone, "
            f"{fmt(s['point on the floor']['us_per_pkt_net'])} µs with the point on the floor (fixed costs "
            f"subtracted), ratio {fmt(r, '{:.3f}')} — "
            + ("–" if r is None else ("met" if abs(r - 1) <= TOLERANCE else "**not met**"))
            + f"; all server CPU included: ratio {fmt(s.get('ratio'), '{:.3f}')}",
        ]
        transcoding = [w for w in s["windows"] if (w["renditions"] or {}).get("transcoder")]
        if transcoding:
            lines.append("- **Caution:** the server transcoded a low rendition during "
                         + ", ".join(f"round {w['round']} ({w['state']})" for w in transcoding)
                         + ": its link adaptation moved subscribers whose reports showed loss; that CPU is "
                           "in those windows' figures and is not fan-out.")
        short = [w for w in s["windows"] if w["pps_mean"] is not None and (w["pps_min"] or 0) < 0.5 * w["pps_mean"]]
        if short:
            lines.append("- **Invalid windows:** a subscriber received under half the mean packet rate in "
                         + ", ".join(f"round {w['round']} ({w['state']})" for w in short)
                         + " (lost by the server or starved of CPU in the load generator).")
        overflow = [w for w in s["windows"] if w["rcvbuf_errors"]]
        if overflow:
            lines.append("- **Caution:** UDP datagrams dropped for a full receive buffer (the machine's count) in "
                         + ", ".join(f"round {w['round']} ({w['state']}): {w['rcvbuf_errors']}" for w in overflow)
                         + ".")
        busy = [w for w in s["windows"] if w["foreign"] > 0.25]
        if busy:
            lines.append(f"- **Caution:** processes outside the benchmark used {min(w['foreign'] for w in busy):.2f}–"
                         f"{max(w['foreign'] for w in busy):.2f} cores in {len(busy)} of the {len(s['windows'])} "
                         "windows: the times above include waiting for a core.")
        lines += [
            "",
            "### Switch times, seconds from the chair's 200",
            "",
            "| switch | p50 | p95 | max | seen | never seen | per round p50 / p95 / max (never seen) | chair's POST → 200 "
            "| p95 from the POST |",
            "|---|---:|---:|---:|---:|---:|---|---|---:|",
        ]
        for label, x in (("grant → the point's first packet", g), ("end → the speaker's first packet", e)):
            lines.append(
                f"| {label} | {fmt(x['p50'])} | {fmt(x['p95'])} | {fmt(x['max'])} | {x['samples']} | {x['missing']} "
                f"| {'; '.join(' / '.join(fmt(v) for v in pr[:3]) + f' ({pr[3]})' for pr in x['per_round'])} "
                f"| {', '.join(fmt(v, '{:.3f}') for v in x['request'])} | {fmt(x['p95_from_post'])} |")
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
            lines.append(f"| {i + 1} | " + " | ".join(fmt(st[k], "{:.3f}") for k in (
                "notified", "answered", "connected", "first_frame", "keyframe_requested", "live", "first_at_subscriber"))
                + f" | {st['keyframe_requests'] if st['keyframe_requests'] is not None else '–'} |")
        if s.get("grant_live_unloaded") is not None:
            lines += ["", f"With no subscriber (before they joined), grant → the server's `live` took "
                          f"{s['grant_live_unloaded']:.2f} s (polled every 0.25 s)."]
        lines += [
            "",
            "### Fan-out CPU per forwarded packet",
            "",
            f"Fixed costs, the same server with no subscriber: speaker alone {fmt(s['fixed']['speaker'], '{:.3f}')} "
            f"cores; the point on the floor {fmt(s['fixed']['floor'], '{:.3f}')} cores (both ingests and the mix).",
            "",
            "| round | program | server cores | pkt/s per subscriber: video + audio (min of the sums) "
            "| µs server CPU per forwarded pkt "
            "| µs per pkt, fixed costs subtracted | audio mix: pkt/s made (ticks skipped) "
            "| subscribers not on the full rendition; transcoder | load gen cores "
            "| machine busy, cores (other processes) |",
            "|---:|---|---:|---|---:|---:|---|---|---:|---|",
        ]
        for w in s["windows"]:
            warn = "" if w["state"] == "speaker alone" or w["media_after"] == "live" else f" ⚠ {w['media_after']} at the end"
            lines.append(
                f"| {w['round']} | {w['state']}{warn} | {w['server_cores']:.2f} "
                f"| {fmt(w['kind_pps'].get('video'), '{:.0f}')} + {fmt(w['kind_pps'].get('audio'), '{:.0f}')} "
                f"({fmt(w['pps_min'], '{:.0f}')}) | {fmt(w['us_per_pkt'])} | {fmt(w['us_per_pkt_net'])} "
                f"| {_mix_cell(w.get('mix'))} | {_rendition_cell(w['renditions'])} | {fmt(w['loadgen_cores'])} | {w['busy']:.2f} ({w['foreign']:.2f}) |")
        for state in ("speaker alone", "point on the floor"):
            x = s[state]
            lines.append(f"| all | {state} | | | {fmt(x['us_per_pkt'])} | {fmt(x['us_per_pkt_net'])} | | | | "
                         f"rounds spread {fmt(None if x['spread'] is None else 100 * x['spread'], '{:.1f}')} % |")
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
point on the floor alternate, so a change of the machine's load hits both. The load generator
(nice 0 here: at nice +10 other work on the machine starved it), the publishers (nice −10, as a
point's own machine) and the server share the machine's cores; "other processes" is CPU used by
processes outside the benchmark."""
