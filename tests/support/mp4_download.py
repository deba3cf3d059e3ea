"""Fetching a recording's MP4 as a client must: the first request starts it (202), then poll."""

from __future__ import annotations

import httpx

from tests.support.waiting import wait_until


def fetch_mp4(client: httpx.Client, url: str, timeout: float = 60.0) -> httpx.Response:
    """GET ``url`` (a signed link keeps its query) until the MP4 is made (200); any answer but 202
    or 200 fails at once."""

    def attempt() -> httpx.Response:
        r = client.get(url)
        assert r.status_code in (200, 202), f"{url}: {r.status_code} {r.text[:300]}"
        return r

    return wait_until(attempt, timeout, f"the MP4 of {url}", check=lambda r: r.status_code == 200, interval=0.25)
