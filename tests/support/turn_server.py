"""A real coturn ``turnserver`` on a free loopback port (UDP, no TLS), for the TURN tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from aioice import stun

from bench.server_process import free_port
from tests.support.waiting import wait_until


class TurnServer:
    """``TurnServer(workdir, "--lt-cred-mech", "--user=u:p")``: the auth options are the caller's."""

    def __init__(self, workdir: Path, *auth: str) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.auth = auth
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> TurnServer:
        if shutil.which("turnserver") is None:
            pytest.fail("coturn's turnserver is not installed (`make test` installs it)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.workdir / "turnserver.log", "wb")
        self.proc = subprocess.Popen(
            ["turnserver", "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", f"--listening-port={self.port}",
             "--allow-loopback-peers", *self.auth, "--realm=diemcau",
             "--no-tls", "--no-dtls", "--no-cli", "--fingerprint", "--log-file=stdout", "--simple-log"],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.settimeout(0.2)
            wait_until(lambda: self._answers_stun(probe), 10, "turnserver to answer a STUN Binding request",
                       interval=0.01)
        return self

    def _answers_stun(self, probe: socket.socket) -> bool:
        """Ready once it answers a Binding request (it listens on UDP: there is no connect to wait on)."""
        assert self.proc is not None and self.proc.poll() is None, "turnserver exited"
        request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
        probe.sendto(bytes(request), ("127.0.0.1", self.port))
        try:
            data, _ = probe.recvfrom(2048)
        except (TimeoutError, ConnectionRefusedError):
            return False
        return stun.parse_message(data).transaction_id == request.transaction_id

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self._log.close()
            self.proc = None
