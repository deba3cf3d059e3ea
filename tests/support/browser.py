"""Headless Debian Chromium driven by Playwright (sync API), for tests of the web pages.

Use the module-scoped ``browser`` fixture (exposed in ``tests/conftest.py``) and the function-scoped
``open_page`` factory: each page gets its own browser context (own cookies, autoplay state, fake
camera) and is closed after the test. Never run ``playwright install``: the system Chromium is used.
Pages must be loaded from the test server (http://127.0.0.1:PORT is a secure context, so
getUserMedia and WebRTC work). Every wait here is bounded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.waiting import wait_until

CHROMIUM = os.environ.get("DIEMCAU_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]


def _apt_running() -> bool:
    if not shutil.which("pgrep"):
        return False
    return subprocess.run(["pgrep", "-x", "apt|apt-get|dpkg"], capture_output=True).returncode == 0


def wait_for_chromium(timeout: float = 300.0) -> str:
    """Path of Chromium; waits (bounded) while apt is still installing it, fails clearly otherwise."""
    deadline = time.monotonic() + timeout
    while not Path(CHROMIUM).exists():
        if not _apt_running() or time.monotonic() > deadline:
            pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (make test does it)")
        time.sleep(2)
    return CHROMIUM


class Page:
    """A Playwright page plus the console lines it printed (shown when a wait fails)."""

    def __init__(self, page) -> None:  # type: ignore[no-untyped-def]
        self.page = page
        self.console: list[str] = []
        page.on("console", lambda m: self.console.append(f"[{m.type}] {m.text}"))
        page.on("pageerror", lambda e: self.console.append(f"[pageerror] {e}"))

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.page, name)

    def wait_until(self, expression: str, timeout: float = 15.0, what: str = "", interval: float = 0.2):  # type: ignore[no-untyped-def]
        """Evaluate ``expression`` (may be async) until truthy; return its value. Bounded by ``timeout``;
        a failure says what the page and its console said."""

        def evaluate():  # type: ignore[no-untyped-def]
            try:
                return self.page.evaluate(expression)
            except Exception as exc:  # page navigating or script not loaded yet
                if "has been closed" in str(exc):
                    raise
                return exc

        try:
            return wait_until(evaluate, timeout, what or repr(expression), interval=interval,
                              check=lambda value: value and not isinstance(value, Exception))
        except AssertionError as failure:
            raise AssertionError(f"{failure}\npage: {self.diagnostics()}\nconsole:\n"
                                 + "\n".join(self.console[-40:])) from None

    def diagnostics(self) -> str:
        """What the page itself says: URL, #status, #error and the supervisor's last error, if any."""
        try:
            return str(
                self.page.evaluate(
                    """() => ({
                      url: location.pathname,
                      status: document.getElementById('status')?.textContent,
                      error: document.getElementById('error')?.textContent,
                      lastError: window.diemcau?.supervisor?.lastError,
                    })"""
                )
            )
        except Exception as exc:
            return f"unavailable ({exc})"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """One headless Chromium per test module (fake camera + microphone, loopback ICE).

    Module scope, not session: Playwright's sync API keeps an asyncio loop "running" on this thread
    while it is open, which would make every later ``async def`` test fail with "Runner.run() cannot
    be called from a running event loop". Page-test modules hold only sync tests.
    """
    from playwright.sync_api import sync_playwright

    path = wait_for_chromium()
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS, timeout=60_000)
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser) -> Iterator[Callable[[str], Page]]:  # type: ignore[no-untyped-def]
    """``open_page(url)`` -> a loaded ``Page`` in a fresh context; all are closed after the test.

    No permission is pre-granted (a connection point has no camera, so Chromium hides its host
    addresses behind mDNS names, as in the field); getUserMedia is answered by
    ``--use-fake-ui-for-media-stream``. Pass ``permissions=[...]`` to grant some anyway.
    """
    contexts = []

    def _open(url: str, permissions: list[str] | None = None) -> Page:
        context = browser.new_context(permissions=permissions or [], viewport={"width": 1280, "height": 800})
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = Page(context.new_page())
        page.goto(url, wait_until="load")
        return page

    yield _open
    for context in contexts:
        try:
            context.close()
        except Exception:
            pass
