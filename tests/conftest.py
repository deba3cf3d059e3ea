"""Shared fixtures: a real server process per test session (and fresh ones on demand)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import browser, open_page  # noqa: F401  (fixtures for the page tests)
from tests.support.server import ServerProcess


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server shared by the tests that do not restart or kill it: the ingest and 2 media workers."""
    srv = ServerProcess(tmp_path_factory.mktemp("server"), env={"DIEMCAU_WORKERS": "3"}).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def single_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The same server in single-process mode (DIEMCAU_WORKERS=1)."""
    srv = ServerProcess(tmp_path_factory.mktemp("single"), env={"DIEMCAU_WORKERS": "1"}).start()
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of the test's own, for restart / kill -9 scenarios."""
    srv = ServerProcess(tmp_path / "server").start()
    yield srv
    srv.stop()
