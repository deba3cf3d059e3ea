"""Where the low rendition comes from, end to end through the real server (an ingest and two media
workers, WHIP and WHEP over HTTP).

The speaker page in headless Chromium (fake camera) publishes its picture twice, full size and
scaled to 360 lines: a point's aiortc subscriber pinned to the low rendition decodes the page's own
low track, the server's stats say the publisher makes it and no transcoder runs; while a one-track
point holds the floor the server makes it, and once the floor ends the page's own is back and the
transcoder stops; unpinned the subscriber gets the full size again. An OBS-like publisher (one 1280x720 video track) gets the server's transcode: a
point pinned low decodes 640x360 and the stats show the transcoder running. A third video track is
refused with the reason.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from aiortc import RTCPeerConnection

from bench.clip import test_clip
from bench.server_process import ServerProcess
from bench.whip_publisher import NO_ICE, negotiate
from tests.support.background import BackgroundPublisher
from tests.support.live_conference import LiveConference
from tests.support.program_probe import ProgramWatcher, decoding_peers
from tests.support.waiting import wait_until
from tests.test_browser_pages import go_live

pytestmark = pytest.mark.slow

T = TypeVar("T")
CSV = "name,level,parent,summoned\nXã Tam Đảo,commune,,20\n"
POINT = "Xã Tam Đảo"
LOW_HEIGHT = 360  # the low rendition's height (media.renditions; web_client/js/whip_whep.js LOW_RENDITION)


class LoopThread:
    """An event loop on a thread of its own for the aiortc subscribers (Playwright holds the test's)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="subscribers", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    decoding_peers()
    thread = LoopThread()
    yield thread
    thread.close()


class Conference(LiveConference):
    """A conference with one connection point, its organiser and admin clients."""

    def __init__(self, server: ServerProcess, title: str) -> None:
        super().__init__(server, title, CSV)
        self.point = self.links[POINT]

    def floor_point(self) -> dict:
        """A second point, to be given the floor: its id and token."""
        with self.client() as c:
            r = c.post(f"/api/v1/conferences/{self.id}/points", json={"name": "Xã Đại Đình", "level": "commune"})
            assert r.status_code in (200, 201), r.text
            point_id = r.json()["id"]
            token = c.post(f"/api/v1/conferences/{self.id}/points/{point_id}/token").json()["token"]
        return {"point_id": point_id, "token": token}

    def pin(self, rendition: str | None) -> None:
        with self.client() as c:
            r = c.post(f"/api/v1/conferences/{self.id}/points/{self.point['point_id']}/rendition",
                       json={"rendition": rendition})
        assert r.status_code == 200 and r.json()["sessions"] == 1, r.text

    def low_rendition(self) -> str:
        """How the server says the low rendition is made (the dashboard's speaker state)."""
        return self.quality()["speaker"]["low_rendition"]

    def transcoder(self) -> dict:
        """The ingest's transcoder of this conference (its stats)."""
        with self.server.admin() as c:
            r = c.get("/api/v1/media/stats")
        assert r.status_code == 200, r.text
        return r.json()["workers"][0]["transcoders"][self.id]

    def ingest_stats(self) -> dict:
        """The ingest's own figures (/api/v1/media/stats): its transcoders and how each low rendition is made."""
        with self.server.admin() as c:
            r = c.get("/api/v1/media/stats")
        assert r.status_code == 200, r.text
        stats = r.json()
        ingest = stats["workers"][0]
        return {"transcoder": self.id in ingest["transcoders"], "made_by": ingest["low_renditions"].get(self.id),
                "low_source": stats["routers"][self.id]["sources"]["low"]}

    async def watch(self) -> ProgramWatcher:
        """The point's aiortc WHEP subscriber, decoding what it gets."""
        pc = RTCPeerConnection(NO_ICE)
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        watcher = ProgramWatcher(pc)
        watcher.attach()
        await negotiate(pc, f"{self.server.url}/whep/{self.id}", self.point["token"])
        return watcher


def decoded_size(watcher: ProgramWatcher, size: tuple[int, int], timeout: float, what: str) -> None:
    """Until the subscriber's latest decoded pictures (a run of 10) are ``size``."""
    wait_until(lambda: [s for _, s in watcher.sizes[-10:]], timeout, what,
               check=lambda recent: len(recent) == 10 and set(recent) == {size})


@pytest.mark.browser
def test_the_speaker_page_sends_its_own_low_rendition(server: ServerProcess, loop: LoopThread, open_page) -> None:  # type: ignore[no-untyped-def]
    conference = Conference(server, "Hai bản hình từ trang diễn giả")
    speaker, camera = go_live(open_page, server, conference.id)
    full = (camera["width"], camera["height"])
    low = (round(camera["width"] * LOW_HEIGHT / camera["height"]), LOW_HEIGHT) if camera["height"] > LOW_HEIGHT else full
    sent = speaker.wait_until("window.diemcau.state.outbound?.low?.height ? window.diemcau.state.outbound : null", 20,
                              "the page encoding two sizes")
    assert (sent["low"]["width"], sent["low"]["height"]) == low, sent
    watcher = loop.run(conference.watch())
    try:
        decoded_size(watcher, full, 30, "the full picture unpinned")
        conference.pin("low")
        decoded_size(watcher, low, 20, "the page's own low rendition")
        assert conference.low_rendition() == "publisher"
        stats = conference.ingest_stats()
        assert stats["made_by"] == "publisher" and stats["low_source"]["packets"] > 0, stats
        assert not stats["transcoder"], "no server transcode for a publisher that sends its own"
        dashboard = open_page(f"{server.url}/dashboard.html#conference={conference.id}&token={conference.organiser}")
        dashboard.wait_until("document.getElementById('speaker-low-rendition')?.dataset.madeBy === 'publisher'", 20,
                             "the dashboard saying the speaker sends the low rendition")
        dashboard.close()

        # A point takes the floor publishing one small track: the server makes the low rendition
        # (its picture forwarded as is: no larger than the low size) until the floor ends, then
        # the speaker's own is back and the transcoder stops at once, not after its idle time.
        floor = conference.floor_point()
        with conference.client() as c:
            r = c.post(f"/api/v1/conferences/{conference.id}/floor/grant", json={"point_id": floor["point_id"]})
            assert r.status_code == 200, r.text
        clip = test_clip(seconds=4, width=320, height=180, fps=15, kbps=300, luma=30)
        point = BackgroundPublisher(server.url, conference.id, floor["token"], clip).start()
        try:
            decoded_size(watcher, (320, 180), 20, "the point's picture on the low rendition")
            stats = conference.ingest_stats()
            assert stats["made_by"] == "transcode" and stats["transcoder"], stats
            with conference.client() as c:
                assert c.post(f"/api/v1/conferences/{conference.id}/floor/end").status_code == 200
            decoded_size(watcher, low, 20, "the speaker's own low rendition again")
            wait_until(conference.ingest_stats, 10, "the transcoder stopped",
                       check=lambda st: st["made_by"] == "publisher" and not st["transcoder"])
        finally:
            point.stop()

        conference.pin(None)
        decoded_size(watcher, full, 20, "the full picture again")
    finally:
        loop.run(watcher.close())


def test_a_one_track_publisher_gets_the_server_transcode(server: ServerProcess, loop: LoopThread) -> None:
    conference = Conference(server, "OBS: một bản hình")
    clip = test_clip(seconds=6, width=1280, height=720, fps=30, kbps=1500)
    publisher = BackgroundPublisher(server.url, conference.id, server.token(conference.id, "speaker"), clip).start()
    watcher = loop.run(conference.watch())
    try:
        decoded_size(watcher, (1280, 720), 30, "the full picture")
        conference.pin("low")
        decoded_size(watcher, (640, 360), 30, "the server's low rendition")
        stats = conference.ingest_stats()
        assert stats["made_by"] == "transcode" and stats["transcoder"], stats
        assert conference.low_rendition() == "transcode"
        # it spends its bitrate (~450 kbit/s): x264 once took 90,000 frames a second from the time base
        # and gave each frame 5 bits, a picture of ~10 kbit/s that a weak link never had to leave
        before, began = conference.transcoder()["bytes_out"], time.monotonic()
        time.sleep(3)
        kbps = (conference.transcoder()["bytes_out"] - before) * 8 / (time.monotonic() - began) / 1000
        assert 200 < kbps < 700, f"{kbps:.0f} kbit/s from the transcoder"
    finally:
        loop.run(watcher.close())
        publisher.stop()


def test_a_third_video_track_is_refused_with_the_reason(server: ServerProcess, loop: LoopThread) -> None:
    """A publisher sends its picture and at most one low rendition of it: more is a 400 that says so."""
    async def offer() -> str:
        pc = RTCPeerConnection(NO_ICE)
        for kind in ("audio", "video", "video", "video"):
            pc.addTransceiver(kind, direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    conference = server.create_conference("Ba bản hình")
    r = httpx.post(f"{server.url}/whip/{conference}", content=loop.run(offer()), timeout=20,
                   headers={"Authorization": f"Bearer {server.token(conference, 'speaker')}",
                            "Content-Type": "application/sdp"})
    assert r.status_code == 400 and "3 video tracks" in r.json()["detail"], r.text
