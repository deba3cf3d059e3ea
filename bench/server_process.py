"""A real server process for tests and benchmarks: ``python -m server.main`` on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
ADMIN_TOKEN = "test-admin-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """Start/stop/kill -9 a server with its own data dir; every call is bounded in time."""

    def __init__(self, data_dir: Path, port: int | None = None, env: dict[str, str] | None = None,
                 command: list[str] | None = None, cwd: Path = ROOT) -> None:
        """``command``/``cwd``: another way to start it (an installed ``diemcau serve``, elsewhere)."""
        self.command = command or [sys.executable, "-m", "server.main"]
        self.cwd = cwd
        self.data_dir = data_dir
        self.port = port or free_port()
        self.extra_env = env or {}
        self.proc: subprocess.Popen | None = None
        self.admin_token = ADMIN_TOKEN
        self.log_path = data_dir / "server.log"

    @property
    def url(self) -> str:
        scheme = "https" if "DIEMCAU_TLS_CERT_FILE" in self.extra_env else "http"  # it serves HTTPS itself
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> "ServerProcess":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "DIEMCAU_HOST": "127.0.0.1",
            "DIEMCAU_PORT": str(self.port),
            "DIEMCAU_DATA_DIR": str(self.data_dir),
            "DIEMCAU_ADMIN_TOKEN": self.admin_token,
            "DIEMCAU_ICE_HOST_ADDRESSES": '["127.0.0.1"]',
            "DIEMCAU_ICE_SERVERS": "[]",
            "DIEMCAU_CONFIG": "/nonexistent",
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command, cwd=self.cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1, verify=False).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def __enter__(self) -> "ServerProcess":
        return self if self.proc else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:] if self.log_path.exists() else ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    # --- API helpers -----------------------------------------------------------------------------
    def admin(self) -> httpx.Client:
        return httpx.Client(  # verify=False: a test's own self-signed certificate when it serves HTTPS
            base_url=self.url, headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=15, verify=False
        )

    def create_conference(self, title: str = "Hội nghị học tập nghị quyết", **extra) -> str:
        with self.admin() as c:
            r = c.post("/api/v1/conferences", json={"title": title, **extra})
            r.raise_for_status()
            return r.json()["id"]

    def token(self, conference_id: str, role: str, name: str = "", **extra) -> str:
        with self.admin() as c:
            r = c.post(
                f"/api/v1/conferences/{conference_id}/tokens", json={"role": role, "name": name, **extra}
            )
            r.raise_for_status()
            return r.json()["token"]
