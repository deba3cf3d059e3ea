"""The tests' one way to start a server: settings by name, a data dir of its own, stopped for sure."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from bench.server_process import ServerProcess
from tests.support.redis_server import RedisServer


def settings_env(settings: dict[str, object]) -> dict[str, str]:
    """``max_body_bytes=65536`` -> ``DIEMCAU_MAX_BODY_BYTES="65536"``; lists and dicts as JSON, as the
    server's settings read them from the environment."""
    return {
        f"DIEMCAU_{name.upper()}": value if isinstance(value, str) else json.dumps(value)
        for name, value in settings.items()
    }


class ServerFactory:
    """``start_server(workers=1, max_body_bytes=...)`` starts a server and returns it once healthy.

    Use it as ``with start_server(...) as srv:`` (or yield it from a fixture inside one) so the server
    lives exactly as long as its users; whatever is still running at the end of the session is stopped.
    """

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._started: list[ServerProcess] = []

    def __call__(self, name: str = "server", **settings: object) -> ServerProcess:
        # The live HLS low variant transcodes every recording of a 1280x720 publish to 640x360 (a third
        # of a core): only the tests of it (tests/test_hls_variants.py) turn it on.
        settings.setdefault("hls_low_variant", False)
        server = ServerProcess(self._tmp.mktemp(name), env=settings_env(settings))
        self._started.append(server)
        return server.start()

    @contextmanager
    def two_nodes(self, name: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
        """Two single-process nodes sharing one database and one Redis bus: a cluster, as deployed."""
        base = self._tmp.mktemp(name)
        redis_server = RedisServer(base / "redis").start()
        shared = {"workers": 1, "redis_url": redis_server.url,
                  "database_url": f"sqlite+aiosqlite:///{base / 'shared.db'}"}
        try:
            with self(f"{name}-a", **shared) as a, self(f"{name}-b", **shared) as b:
                yield a, b
        finally:
            redis_server.stop()

    def stop_all(self) -> None:
        for server in self._started:
            server.stop()
