"""A WHIP publisher on its own thread and event loop, so synchronous tests (Playwright, httpx) can
keep the speaker live while they look at what the server makes of it. Every wait is bounded."""

from __future__ import annotations

import asyncio
import threading
import time

from bench.clip import Clip, test_clip
from bench.whip_publisher import Publisher, publish


class BackgroundPublisher:
    def __init__(self, base_url: str, conference_id: str, token: str, clip: Clip | None = None) -> None:
        self.base_url = base_url
        self.conference_id = conference_id
        self.token = token
        self.clip = clip or test_clip()
        self.publisher: Publisher | None = None
        self.started_at = 0.0
        self.video_seconds = 0.0  # video actually sent, set by stop()
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, timeout: float = 30.0) -> BackgroundPublisher:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("publisher did not start")
        if self.error is not None:
            raise RuntimeError("publish failed") from self.error
        return self

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def stop(self, timeout: float = 20.0) -> float:
        """Hang up (like a speaker closing the page); returns the seconds of video sent."""
        self._stop.set()
        self._thread.join(timeout)
        return self.video_seconds

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        try:
            self.publisher = await publish(self.base_url, self.conference_id, self.token, self.clip)
            self.started_at = time.monotonic()
        except BaseException as exc:
            self.error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                await asyncio.sleep(0.05)
        finally:
            self.video_seconds = self.publisher.video.sent / self.clip.fps
            await self.publisher.close()
