"""Shared fixtures: the one server factory, and the servers most tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.browser import browser, open_page  # noqa: F401  (fixtures for the page tests)
from tests.support.server import ServerFactory, ServerProcess


@pytest.fixture(scope="session")
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """``with start_server(workers=1, max_body_bytes=...) as srv:`` — a server of a test's own settings."""
    factory = ServerFactory(tmp_path_factory)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="session")
def server(start_server: ServerFactory) -> Iterator[ServerProcess]:
    """One server shared by the tests that do not restart or kill it: the ingest and 2 media workers."""
    with start_server("server", workers=3) as srv:
        yield srv


@pytest.fixture(scope="session")
def single_server(start_server: ServerFactory) -> Iterator[ServerProcess]:
    """The same server in single-process mode."""
    with start_server("single", workers=1) as srv:
        yield srv


@pytest.fixture
def fresh_server(start_server: ServerFactory) -> Iterator[ServerProcess]:
    """A server of the test's own (default settings), for restart / kill -9 scenarios."""
    with start_server() as srv:
        yield srv
