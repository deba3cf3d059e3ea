"""Headless Debian Chromium on a thread of its own, for tests that also need their event loop.

Playwright's sync API runs an asyncio loop on the thread that starts it; started on pytest's main
thread it stays "running" there and every later ``async def`` test in the same scope fails with
"Runner.run() cannot be called from a running event loop". On a separate thread it cannot disturb
anything. Same Chromium, flags and ``Page`` helper as ``tests/support/browser.py``; every wait is
bounded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from tests.support.browser import CHROMIUM_ARGS, Page, wait_for_chromium

T = TypeVar("T")


def with_page(url: str, check: Callable[[Page], T], timeout: float = 120.0) -> T:
    """Open ``url`` in a fresh headless Chromium on another thread, run ``check(page)`` there."""
    path = wait_for_chromium()
    result: dict[str, Any] = {}

    def run() -> None:
        from playwright.sync_api import sync_playwright

        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS, timeout=60_000)
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
