"""Headless Debian Chromium on a thread of its own, for the HLS page tests.

Playwright's sync API runs an asyncio loop on the thread that starts it; started on pytest's main
thread it stays "running" there and every later ``async def`` test fails with "Runner.run() cannot be
called from a running event loop". On a separate thread it cannot disturb anything. Every wait is
bounded.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

CHROMIUM = os.environ.get("DIEMCAU_CHROMIUM", "/usr/bin/chromium")
ARGS = [
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
T = TypeVar("T")


class Page:
    """A Playwright page plus its console output (shown when a wait times out)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.console: list[str] = []
        page.on("console", lambda m: self.console.append(f"[{m.type}] {m.text}"))
        page.on("pageerror", lambda e: self.console.append(f"[pageerror] {e}"))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.page, name)

    def wait_until(self, expression: str, timeout: float = 15.0, what: str = "") -> Any:
        """Evaluate ``expression`` until it is truthy and return it; fail after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            try:
                last = self.page.evaluate(expression)
            except Exception as exc:  # navigating, or the script is not there yet
                last = f"error: {exc}"
            else:
                if last:
                    return last
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what or expression!r}; last value {last!r}\n"
                    + "\n".join(self.console[-40:])
                )
            time.sleep(0.2)


def with_page(url: str, check: Callable[[Page], T], timeout: float = 120.0) -> T:
    """Open ``url`` in a fresh headless Chromium on another thread, run ``check(page)`` there."""
    result: dict[str, Any] = {}

    def run() -> None:
        from playwright.sync_api import sync_playwright

        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS, timeout=60_000)
                try:
                    context = browser.new_context(viewport={"width": 1280, "height": 800})
                    context.set_default_timeout(15_000)
                    page = Page(context.new_page())
                    page.goto(url, wait_until="load")
                    result["value"] = check(page)
                finally:
                    browser.close()
        except BaseException as exc:  # re-raised on the test's thread
            result["error"] = exc

    thread = threading.Thread(target=run, name="chromium", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"browser check of {url} did not finish in {timeout} s")
    if "error" in result:
        raise result["error"]
    return result["value"]
