"""A half-minute smoke of ``make soak``: the same harness, a few churning WHEP points, WebSocket
clients and live-HLS viewers, run as an operator would run it (a subprocess, a real server).

Half a minute is too short to judge memory growth (warm-up alone takes longer), so this checks what
it can show: every join succeeded and carried media, no client saw an error, the server's log
has no traceback, and once everyone has left the server holds no more descriptors or asyncio tasks
than before the churn. The 20-minute run with the memory verdict is ``make soak``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import soak

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out

ROOT = Path(__file__).resolve().parents[1]


def test_half_a_minute_of_churn_leaves_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--minutes", "0.5", "--subscribers", "8", "--life", "3,8",
         "--pause", "1", "--sockets", "3", "--hls", "2", "--sample", "2.5", "--max-growth", "1000",
         "--no-doc", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert "error" not in res, res.get("trace")
    verdict, churn, audience = res["verdict"], res["churn"], res["audience"]
    assert proc.returncode == 0, (verdict, proc.stdout[-3000:])
    # Churn really happened: more joins than slots, most left, both ways of leaving were used.
    assert churn["joins"] >= 16 and churn["leaves"] >= 8, churn
    assert churn["deletes"] > 0 and churn["failed_joins"] == 0 and churn["without_media"] == 0, churn
    assert churn["keyframe_p95"] is not None and churn["keyframe_p95"] < 10, churn
    assert audience["ws_connects"] >= 3 and audience["ws_events"] > 0 and audience["ws_errors"] == 0, audience
    assert audience["hls_segments"] > 0 and audience["hls_errors"] == 0, audience
    assert not res["server_errors"], res["server_errors"]
    # Nobody connected afterwards: nothing the churn opened is still held.
    assert res["after"]["consumers"] == 0
    assert verdict["fd_delta"] <= 4 and verdict["task_delta"] <= 4, verdict
    assert res["after"]["db_fds"] <= 32, res["after"]
    assert len(res["samples"]) >= 10
    # The report section make soak writes into docs/benchmarks.md, from this run.
    section = soak.render(res, verdict, {"cpu_model": "test", "cores": 2})
    assert "Verdict: **pass**" in section and section.count("| RSS, ") >= 3, section
