"""``make soak`` / ``python -m bench.soak``: hours of a conference day, compressed, watched for leaks.

One server (``python -m server.main``, its media workers as configured), one publisher (the bench's
720p clip over WHIP), ``--subscribers`` WHEP slots that join, watch for a while and leave all the
time (``bench/soak_churn.py``: real aiortc peers; most leave with a DELETE, some just vanish), and
WebSocket clients and live-HLS viewers coming and going (``bench/soak_clients.py``). Every
``--sample`` seconds it reads, for every server process: RSS, open descriptors and (from the media
stats) asyncio tasks. When the time is up everyone leaves and the server is read once more with
nobody connected.

Verdict (exit status 1 when one fails): memory flat after warm-up (the first third): the fitted
growth of the server's total RSS over the last two thirds under ``--max-growth`` percent; no
descriptor or task leak: with nobody connected, descriptors and tasks back to where they were before
the churn began (a small allowance; the SQLite pool's descriptors are counted apart, within the pool's
bound); no failed joins and no client errors beyond ``--max-errors``.
Results go to ``docs/benchmarks.md`` (section "Soak") unless ``--no-doc``. Only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import doc_sections, procstat
from bench.ipc import Child, call_all
from bench.run import CLIP, TARGETS_DOC, Cleanup, _token, _wait, log

ROOT = Path(__file__).resolve().parents[1]
SLOTS_PER_PROCESS = 50
FD_ALLOWANCE = 4  # descriptors (the database's apart) the server may hold more after the churn
DB_FD_BOUND = 2 * 15 + 2  # a file and a WAL descriptor per pooled connection (5 + 10 overflow), one -shm
TASK_ALLOWANCE = 4
SECTION_START, SECTION_END = doc_sections.SOAK


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=20.0, help="churn time (default 20)")
    p.add_argument("--subscribers", type=int, default=100, help="WHEP slots churning at once (default 100)")
    p.add_argument("--sockets", type=int, default=20, help="WebSocket clients coming and going (default 20)")
    p.add_argument("--hls", type=int, default=10, help="live-HLS viewers coming and going (default 10)")
    p.add_argument("--life", default="5,40", help="seconds a subscriber stays, min,max (default 5,40)")
    p.add_argument("--pause", type=float, default=3.0, help="longest pause before joining again (s)")
    p.add_argument("--vanish", type=float, default=0.25, help="share of leaves without a DELETE")
    p.add_argument("--sample", type=float, default=10.0, help="seconds between readings (default 10)")
    p.add_argument("--max-growth", type=float, default=5.0, help="allowed RSS growth, last two thirds (%%)")
    p.add_argument("--max-errors", type=int, default=0, help="allowed client errors and failed joins")
    p.add_argument("--workers", type=int, default=None, help="DIEMCAU_WORKERS for the server")
    p.add_argument("--json", type=Path, default=None, help="write the raw result here")
    p.add_argument("--no-doc", action="store_true", help=f"do not update {TARGETS_DOC}")
    p.add_argument("--report", type=Path, default=None, metavar="JSON",
                   help=f"no run: write {TARGETS_DOC}'s soak section again from a run's --json")
    opts = p.parse_args(argv)
    lo, hi = (float(x) for x in opts.life.split(","))
    if not 0 < lo <= hi or opts.minutes <= 0 or opts.subscribers < 1 or opts.sample <= 0:
        p.error("--life min,max with 0 < min <= max; positive --minutes, --subscribers, --sample")
    opts.life = (lo, hi)
    return opts


# --- readings --------------------------------------------------------------------------------------
def _fds(pid: int, database: str) -> tuple[int, int] | tuple[None, None]:
    """Descriptors open in ``pid``: (others, the SQLite database's). The database's are the
    connection pool's (SQLAlchemy's 5 + 10 overflow, and SQLite keeps a closed connection's
    descriptor while another holds a lock on the file, to reuse it): bounded, reported apart."""
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None, None
    db = 0
    for name in names:
        try:
            db += os.readlink(f"/proc/{pid}/fd/{name}").startswith(database)
        except OSError:
            pass
    return len(names) - db, db


def read_server(srv: Any, root: int) -> dict:
    """RSS and descriptors of every server process (from /proc), asyncio tasks (from the media stats)."""
    procs: dict[str, dict] = {}
    database = str(srv.data_dir / "diemcau.db")
    for pid in procstat.descendants(root):
        rss, _pss = procstat.rss_bytes(pid)
        fds, db_fds = _fds(pid, database)
        procs[str(pid)] = {"rss": rss, "fds": fds, "db_fds": db_fds}
    try:
        with srv.admin() as c:
            stats = c.get("/api/v1/media/stats", timeout=10).json()
        for w in stats.get("workers", []):
            entry = procs.get(str(w.get("pid")))
            if entry is not None:
                entry["tasks"] = w.get("tasks")
        consumers = len(stats.get("consumers", {}))
    except Exception as exc:  # noqa: BLE001 - a reading without the stats; counted as an error
        consumers = None
        procs["error"] = {"text": f"{type(exc).__name__}: {exc}"}
    real = {k: v for k, v in procs.items() if k != "error"}
    return {
        "t": time.time(),
        "procs": procs,
        "rss": sum(v["rss"] for v in real.values()),
        "fds": sum(v["fds"] or 0 for v in real.values()),
        "db_fds": sum(v["db_fds"] or 0 for v in real.values()),
        "tasks": sum(v.get("tasks") or 0 for v in real.values()),
        "consumers": consumers,
    }


def fitted_growth(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope over the span, as percent of the fitted value at its start."""
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    sxx = sum((t - mx) ** 2 for t, _ in points)
    if sxx == 0:
        return None
    slope = sum((t - mx) * (v - my) for t, v in points) / sxx
    t0, t1 = points[0][0], points[-1][0]
    start = my + slope * (t0 - mx)
    return 100.0 * slope * (t1 - t0) / start if start > 0 else None


# --- the run ------------------------------------------------------------------------------------------
def run(opts: argparse.Namespace, workdir: Path) -> dict:
    from bench import publisher, soak_churn, soak_clients
    from bench.server_process import ServerProcess

    res: dict[str, Any] = {"opts": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(opts).items()
                                    if k not in ("json",)}}
    res["opts"]["no_doc"] = opts.no_doc
    cleanup = Cleanup()
    samples: list[dict] = []
    res["samples"] = samples
    try:
        env = {"DIEMCAU_WORKERS": str(opts.workers)} if opts.workers is not None else {}
        srv = ServerProcess(workdir / "server", env=env)
        srv.start(timeout=60)
        cleanup.add("server", srv.stop)
        root = srv.proc.pid  # type: ignore[union-attr]
        conf = srv.create_conference("Soak")
        with srv.admin() as c:
            speaker = _token(c, conf, "speaker", "soak")
            points = [_token(c, conf, "point", f"Điểm {i}") for i in range(opts.subscribers)]
            sockets = [_token(c, conf, ("point", "viewer", "organiser")[i % 3], f"ws {i}") for i in range(opts.sockets)]
            viewers = [_token(c, conf, "viewer", f"hls {i}") for i in range(opts.hls)]
        time.sleep(1.0)
        res["empty"] = read_server(srv, root)

        src = Child("publisher", publisher.main, srv.url, conf, speaker, CLIP)
        cleanup.add("publisher", src.stop)
        _wait(lambda: (s := src.call("status"))["state"] == "connected" and s["sent"]["video"] > 60,
              30, "publisher connected and sending")
        time.sleep(2.0)
        res["before"] = read_server(srv, root)
        log(f"soak: publisher live; server {res['before']['rss'] / 1e6:.0f} MB, {res['before']['fds']} fds, "
            f"{res['before']['tasks']} tasks in {len(res['before']['procs'])} processes")

        procs = max(1, -(-opts.subscribers // SLOTS_PER_PROCESS))
        churners = [Child(f"churn{j}", soak_churn.main) for j in range(procs)]
        for g in churners:
            cleanup.add(g.name, g.stop)
        audience = Child("audience", soak_clients.main)
        cleanup.add("audience", audience.stop)
        shares = [points[j::procs] for j in range(procs)]
        whep = f"{srv.url}/whep/{conf}"
        call_all(churners, "start", 30, [{"url": whep, "tokens": s, "life": list(opts.life), "pause": opts.pause,
                                          "vanish": opts.vanish, "seed": j} for j, s in enumerate(shares)])
        audience.call("start", 30, url=srv.url, conference=conf, socket_tokens=sockets, hls_tokens=viewers,
                      life=[10.0, 60.0])
        started = res["started"] = time.time()
        end = started + opts.minutes * 60
        next_log = started
        while time.time() < end:
            time.sleep(max(0.0, min(opts.sample, end - time.time())))
            reading = read_server(srv, root)
            reading["churn"] = _merge(call_all(churners, "status", 30))
            reading["audience"] = audience.call("status", 30)
            samples.append(reading)
            if time.time() >= next_log:
                ch = reading["churn"]
                log(f"soak {(time.time() - started) / 60:5.1f} min: RSS {reading['rss'] / 1e6:.0f} MB, "
                    f"{reading['fds']} fds, {reading['tasks']} tasks, {reading['consumers']} consumers; "
                    f"joins {ch['joins']}, failed {ch['failed_joins']}")
                next_log = time.time() + max(60.0, opts.sample)
        res["churn"] = _merge(call_all(churners, "stop", 90, [{"timeout": 30}] * procs))
        res["audience"] = audience.call("stop", 60, grace=15)
        res["publisher"] = src.call("status")
        # Nobody connected but the publisher: what the server keeps now is what it would keep forever.
        deadline = time.time() + 30
        while time.time() < deadline:
            after = read_server(srv, root)
            if after["consumers"] == 0:
                break
            time.sleep(1.0)
        time.sleep(5.0)
        res["after"] = read_server(srv, root)
        res["seconds"] = time.time() - started
        res["server_errors"] = _server_errors(srv.log_path)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - reported as the run's error
        import traceback

        res["error"] = f"{type(exc).__name__}: {exc}"
        res["trace"] = traceback.format_exc()
        log(f"soak FAILED: {res['error']}")
    finally:
        cleanup.run()
    return res


def _merge(replies: list[dict]) -> dict:
    out: dict[str, Any] = {}
    for r in replies:
        for k, v in r.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k] = out.get(k, 0) + v
            elif isinstance(v, list):
                out[k] = [*out.get(k, []), *v]
            elif v is not None:
                out.setdefault(k, v)
    for k in ("keyframe_p50", "keyframe_p95"):  # not summed: the worst of the processes
        values = [r[k] for r in replies if r.get(k) is not None]
        out[k] = max(values) if values else None
    return out


def _server_errors(log_path: Path) -> list[str]:
    """Tracebacks and ERROR lines in the server's log: none expected."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [line[:300] for line in lines if " ERROR " in line or line.startswith("Traceback")][:20]


# --- verdict and report ---------------------------------------------------------------------------
def verdict(res: dict, opts: argparse.Namespace) -> dict:
    samples = res.get("samples", [])
    checks: dict[str, Any] = {}
    if "error" in res or not samples or "after" not in res:
        return {"ok": False, "why": [res.get("error", "no readings")]}
    t0 = samples[0]["t"]
    span = samples[-1]["t"] - t0
    tail = [s for s in samples if s["t"] - t0 >= span / 3]
    checks["rss_growth_pct"] = fitted_growth([(s["t"], s["rss"]) for s in tail])
    checks["rss_warm"] = tail[0]["rss"] if tail else None
    checks["rss_end"] = samples[-1]["rss"]
    checks["fd_delta"] = res["after"]["fds"] - res["before"]["fds"]
    checks["task_delta"] = res["after"]["tasks"] - res["before"]["tasks"]
    checks["rss_after_vs_warm_pct"] = (100.0 * (res["after"]["rss"] - tail[0]["rss"]) / tail[0]["rss"]
                                       if tail else None)
    churn, audience = res["churn"], res["audience"]
    errors = churn["failed_joins"] + churn["delete_errors"] + churn["without_media"] + audience["ws_errors"] \
        + audience["hls_errors"] + len(res.get("server_errors", []))
    checks["errors"] = errors
    why = []
    growth = checks["rss_growth_pct"]
    if growth is None or growth >= opts.max_growth:
        why.append(f"RSS grew {growth if growth is None else round(growth, 2)} % over the last two thirds "
                   f"(limit {opts.max_growth} %)")
    if checks["fd_delta"] > FD_ALLOWANCE:
        why.append(f"{checks['fd_delta']} more descriptors with nobody connected than before the churn")
    if res["after"].get("db_fds", 0) > DB_FD_BOUND:
        why.append(f"{res['after']['db_fds']} database descriptors, more than the pool can hold ({DB_FD_BOUND})")
    if checks["task_delta"] > TASK_ALLOWANCE:
        why.append(f"{checks['task_delta']} more asyncio tasks with nobody connected than before the churn")
    if errors > opts.max_errors:
        why.append(f"{errors} errors (limit {opts.max_errors})")
    if churn["joins"] < opts.subscribers:
        why.append(f"only {churn['joins']} joins")
    return {"ok": not why, "why": why, **checks}


def render(res: dict, v: dict, machine: dict, when: float | None = None) -> str:
    o = res["opts"]
    when = when or res.get("started") or (res["samples"][0]["t"] if res.get("samples") else time.time())
    mb = lambda b: f"{b / 1e6:.0f} MB"  # noqa: E731
    lines = [
        SECTION_START,
        "## Soak (`make soak`)",
        "",
        f"Run {datetime.datetime.fromtimestamp(when, datetime.timezone.utc).strftime('%Y-%m-%d %H:%M')} UTC "
        f"on this machine ({machine.get('cpu_model', '?')}, "
        f"{machine.get('cores', '?')} cores): {o['minutes']:g} min of churn, {o['subscribers']} WHEP slots "
        f"(each stays {o['life'][0]:g}–{o['life'][1]:g} s, {int(o['vanish'] * 100)} % leave without a DELETE), "
        f"{o['sockets']} WebSocket clients and {o['hls']} live-HLS viewers coming and going, one publisher "
        "(720p30 clip, 2 Mbit/s). Server: every process (main and media workers) read every "
        f"{o['sample']:g} s.",
        "",
    ]
    if "error" in res:
        lines += [f"**The run failed**: {res['error']}", "", SECTION_END]
        return "\n".join(lines)
    ch, au = res["churn"], res["audience"]
    lines += [
        "| | before the churn | warm (⅓) | end of churn | nobody connected |",
        "|---|---|---|---|---|",
        f"| RSS, all server processes | {mb(res['before']['rss'])} | {mb(v['rss_warm'])} | {mb(v['rss_end'])} | "
        f"{mb(res['after']['rss'])} |",
        f"| open descriptors (without the database's) | {res['before']['fds']} | – | {res['samples'][-1]['fds']} | "
        f"{res['after']['fds']} |",
        f"| the SQLite database's descriptors (connection pool) | {res['before'].get('db_fds', '–')} | – | "
        f"{res['samples'][-1].get('db_fds', '–')} | {res['after'].get('db_fds', '–')} |",
        f"| asyncio tasks | {res['before']['tasks']} | – | {res['samples'][-1]['tasks']} | {res['after']['tasks']} |",
        *_per_process(res, v),
        "",
        "Over time (all server processes):",
        "",
        "| minute | RSS | descriptors | asyncio tasks | WHEP sessions | joins so far |",
        "|---:|---:|---:|---:|---:|---:|",
        *_series(res),
        "",
        f"- WHEP: {ch['joins']} joins, {ch['leaves']} leaves ({ch['deletes']} DELETE, {ch['vanishes']} vanished), "
        f"{ch['failed_joins']} failed joins, {ch['without_media']} without media; first keyframe after the POST "
        f"p50 {_s(ch.get('keyframe_p50'))}, p95 {_s(ch.get('keyframe_p95'))} (worst churn process).",
        f"- WebSocket: {au['ws_connects']} connections, {au['ws_events']} events read, {au['ws_errors']} errors. "
        f"Live HLS: {au['hls_restarts']} viewer starts, {au['hls_playlists']} playlists, {au['hls_segments']} segments "
        f"({au['hls_bytes'] / 1e6:.0f} MB), {au['hls_errors']} errors.",
        f"- Memory after warm-up: fitted growth over the last two thirds **{_pct(v['rss_growth_pct'])}** "
        f"(limit {o['max_growth']:g} %); with nobody connected {_pct(v['rss_after_vs_warm_pct'])} against the warm "
        f"reading. Descriptors {v['fd_delta']:+d}, tasks {v['task_delta']:+d} against before the churn. "
        f"Errors in the server log: {len(res.get('server_errors', []))}.",
        f"- Verdict: **{'pass' if v['ok'] else 'FAIL'}**" + ("" if v["ok"] else ": " + "; ".join(v["why"])),
        "",
        SECTION_END,
    ]
    return "\n".join(lines)


def _per_process(res: dict, v: dict) -> list[str]:
    """One row per server process (the main process first, as procstat.descendants lists it)."""
    samples = res["samples"]
    warm = next((s for s in samples if s["t"] - samples[0]["t"] >= (samples[-1]["t"] - samples[0]["t"]) / 3),
                samples[0])
    rows = []
    for i, pid in enumerate(k for k in res["before"]["procs"] if k != "error"):
        cells = [res[key]["procs"].get(pid, {}).get("rss") for key in ("before",)]
        cells += [warm["procs"].get(pid, {}).get("rss"), samples[-1]["procs"].get(pid, {}).get("rss"),
                  res["after"]["procs"].get(pid, {}).get("rss")]
        name = "main (API, ingest, recorder)" if i == 0 else f"process {pid}"
        rows.append(f"| RSS, {name} | " + " | ".join("–" if c is None else f"{c / 1e6:.0f} MB" for c in cells) + " |")
    return rows


def _series(res: dict, rows: int = 8) -> list[str]:
    samples = res["samples"]
    picked = [samples[round(i * (len(samples) - 1) / (rows - 1))] for i in range(rows)] if len(samples) >= rows \
        else samples
    t0 = res.get("started") or samples[0]["t"]
    return [f"| {(s['t'] - t0) / 60:.1f} | {s['rss'] / 1e6:.0f} MB | {s['fds']} | {s['tasks']} | {s['consumers']} | "
            f"{s.get('churn', {}).get('joins', '–')} |" for s in picked]


def _s(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f} s"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:+.1f} %"


def write_doc(section: str) -> None:
    path = ROOT / TARGETS_DOC
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    path.write_text(doc_sections.put(text, section, doc_sections.SOAK))


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    if opts.report is not None:
        res = json.loads(opts.report.read_text())
        saved = argparse.Namespace(**{**res["opts"], "life": tuple(res["opts"]["life"])})
        v = verdict(res, saved)
        write_doc(render(res, v, procstat.machine_info(), when=res.get("started")))
        log(f"soak: {opts.report} written to {TARGETS_DOC}")
        return 0 if v["ok"] else 1
    with tempfile.TemporaryDirectory(prefix="diemcau-soak-") as tmp:
        res = run(opts, Path(tmp))
    v = verdict(res, opts)
    res["verdict"] = v
    if opts.json:
        opts.json.write_text(json.dumps(res, indent=1, default=str))
    log(f"soak verdict: {'pass' if v['ok'] else 'FAIL'} " + json.dumps({k: v[k] for k in v if k != 'ok'}, default=str))
    if not opts.no_doc:
        write_doc(render(res, v, procstat.machine_info()))
        log(f"soak: results written to {TARGETS_DOC}")
    return 0 if v["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
