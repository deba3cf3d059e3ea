"""Stopping the server (Ctrl-C on `make run`, or a service manager's SIGTERM) ends it cleanly: no
traceback, and its media worker processes gone with it."""

from __future__ import annotations

import os
import signal

import pytest

from tests.support.server import ServerFactory
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie has exited
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_server_and_its_workers_stop_cleanly(start_server: ServerFactory, sig: signal.Signals) -> None:
    server = start_server(workers=3)
    try:
        with server.admin() as c:
            workers = c.get("/api/v1/media/stats").json()["workers"]
        pids = [w["pid"] for w in workers if w["index"] > 0]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        server.proc.send_signal(sig)
        # uvicorn re-raises the signal once shut down, so SIGTERM ends in the default way (-15)
        assert server.proc.wait(20) in (0, -sig), server.log()
        wait_until(lambda: not any(_alive(p) for p in pids), 10, "the workers gone")
        log = server.log()
        assert "Traceback" not in log and "shutdown failed" not in log, log
        assert "disconnected" not in log, log  # an expected stop is not reported as a lost worker
    finally:
        server.kill9()
