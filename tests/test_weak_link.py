"""Weak links kept watchable, end to end: the point page in headless Chromium watches through an
emulated link (tests/support/link_emulator.py: a UDP relay that caps, drops and queues; every packet
of the page's WHEP session takes it), against the real server (in one process: the transcoder and
the points' adaptation beside the forwarding) with a speaker publishing 720p.

Capped at 700 kbit/s with 5 % loss the page is moved to the low rendition within 10 s and keeps
playing there, where a second page pinned to the full rendition on an identical link does not;
with the cap lifted it goes back to full within 30 s (found by probe padding, not a blind switch);
at 150 kbit/s it goes to audio only and its sound goes on. The page shows the rendition each time.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from bench.clip import test_clip
from bench.server_process import ServerProcess
from tests.support.browser import Page
from tests.support.link_emulator import ThreadedLink
from tests.support.live_conference import LiveConference
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

CSV = "name,level,parent,summoned\nXã Vân Hồ,commune,,20\nXã Mộc Châu,commune,,20\n"


class Conference(LiveConference):
    def __init__(self, server: ServerProcess) -> None:
        super().__init__(server, "Đường truyền yếu", CSV, test_clip(seconds=6, width=1280, height=720, fps=30, kbps=1500))

    def media(self) -> str:
        """The server's view for a failure message: transcoders, and each point's video."""
        with self.server.admin() as c:
            stats = c.get("/api/v1/media/stats").json()
        points = {cid: {k: c.get(k) for k in ("rendition", "pinned", "adaptation")} | {
            k: (c.get("video") or {}).get(k) for k in ("packets", "retransmits", "probe_octets", "fraction_lost", "rtt_ms")}
            for cid, c in stats["consumers"].items() if c["conference"] == self.id}
        return f"transcoders {stats.get('renditions')}; points {points}"

    def reaches(self, name: str, rendition: str, seconds: float, what: str) -> None:
        """Wait for the point's rendition at the server; the server's view in the failure."""
        try:
            wait_until(lambda: self.row(name), seconds, what, check=lambda r: r["rendition"] == rendition, interval=0.5)
        except AssertionError as failure:
            raise AssertionError(f"{failure}; {self.media()}") from None

    def pin(self, name: str, rendition: str | None) -> None:
        with self.client() as c:
            r = c.post(f"/api/v1/conferences/{self.id}/points/{self.links[name]['point_id']}/rendition",
                       json={"rendition": rendition})
        assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def conference(single_server: ServerProcess) -> Iterator[Conference]:
    conf = Conference(single_server)
    yield conf
    conf.publisher.stop()


def through(page: Page, link: ThreadedLink) -> None:
    """Every WHEP offer and answer of the page rewritten so its media takes ``link``."""
    def rewrite(route) -> None:  # type: ignore[no-untyped-def]
        request = route.request
        if request.method != "POST":
            route.continue_()
            return
        response = route.fetch(post_data=link.offer_to_server(request.post_data or ""))
        body = response.text()
        route.fulfill(response=response, body=link.answer_to_peer(body) if response.status == 201 else body)
    page.page.route(re.compile(r"/whep/"), rewrite)


def open_point(open_page, conference: Conference, name: str, link: ThreadedLink) -> Page:  # type: ignore[no-untyped-def]
    page = open_page("about:blank")
    through(page, link)
    page.goto(f"{conference.server.url}/point.html#conference={conference.id}&token={conference.links[name]['token']}",
              wait_until="load")
    return page


SHOWN = "document.getElementById('rendition').dataset.rendition"
FRAMES = "(() => { const v = document.querySelector('video'); return [v.getVideoPlaybackQuality().totalVideoFrames, v.videoWidth, v.videoHeight]; })()"
AUDIO = ("(async () => { let n = 0; (await window.pc.getStats()).forEach(s => {"
         " if (s.type === 'inbound-rtp' && s.kind === 'audio') n += s.totalSamplesReceived || 0; }); return n; })()")


def fps(page: Page, seconds: int) -> tuple[float, tuple[int, int]]:
    """Frames the page's video presented per second over the next ``seconds``, and its size."""
    samples = [page.evaluate(FRAMES)]
    for _ in range(seconds):
        time.sleep(1)
        samples.append(page.evaluate(FRAMES))
    print("frames each second:", [b[0] - a[0] for a, b in zip(samples, samples[1:])])
    return (samples[-1][0] - samples[0][0]) / seconds, (samples[-1][1], samples[-1][2])


def test_a_weak_link_gets_the_low_rendition_then_audio_and_recovers(conference: Conference, open_page) -> None:  # type: ignore[no-untyped-def]
    adaptive_link, full_link = ThreadedLink(), ThreadedLink()
    try:
        adaptive = open_point(open_page, conference, "Xã Vân Hồ", adaptive_link)
        full = open_point(open_page, conference, "Xã Mộc Châu", full_link)
        conference.pin("Xã Mộc Châu", "full")  # the comparison: the full rendition alone on the same link
        for page in (adaptive, full):
            page.wait_until("window.pc?.connectionState === 'connected'", 30, "the point watching")
            page.wait_until(f"{FRAMES}[0] > 30 && {FRAMES}[2] === 720", 30, "the full picture")
        adaptive.wait_until(f"{SHOWN} === 'full'", 15, "the page shows the full rendition")

        capped = time.monotonic()
        for link in (adaptive_link, full_link):
            link.set(700_000, loss=0.05)
        row = wait_until(lambda: conference.row("Xã Vân Hồ"), 12, "a lower rendition within 10 s of the cap",
                         check=lambda r: r["rendition"] in ("low", "audio"), interval=0.5)
        switched = time.monotonic() - capped
        assert row["rendition"] == "low", f"{row}; {conference.media()}"
        adaptive.wait_until(f"{SHOWN} === 'low'", 5, "the page shows the low rendition")
        full_before = full.evaluate(FRAMES)[0]
        adaptive_fps, size = fps(adaptive, 10)
        full_fps = (full.evaluate(FRAMES)[0] - full_before) / 10  # the same 10 s
        print(f"700 kbit/s, 5 % loss: low rendition after {switched:.1f} s; last 10 s: adaptive {adaptive_fps:.1f} fps,"
              f" the full rendition alone {full_fps:.1f} fps")
        row = conference.row("Xã Vân Hồ")
        assert row["rendition"] == "low", f"held the low rendition: {row}; {conference.media()}"
        assert size == (640, 360), size
        assert adaptive_fps >= 20, f"{adaptive_fps:.1f} fps on the low rendition; {conference.media()}"
        assert full_fps < adaptive_fps, f"the full rendition alone: {full_fps:.1f} fps"

        lifted = time.monotonic()
        for link in (adaptive_link, full_link):
            link.set(None)
        conference.reaches("Xã Vân Hồ", "full", 30, "back to full within 30 s of the cap lifted")
        adaptive.wait_until(f"{FRAMES}[2] === 720", 10, "the full picture again")
        print(f"cap lifted: full rendition after {time.monotonic() - lifted:.1f} s")

        adaptive_link.set(150_000)
        conference.reaches("Xã Vân Hồ", "audio", 20, "audio only at 150 kbit/s")
        adaptive.wait_until(f"{SHOWN} === 'audio'", 5, "the page says audio only")
        frames_before = adaptive.evaluate(FRAMES)[0]
        heard = adaptive.evaluate(AUDIO)
        time.sleep(3)
        assert adaptive.evaluate(AUDIO) - heard >= 2 * 48000, "the audio goes on at 150 kbit/s"
        assert adaptive.evaluate(FRAMES)[0] - frames_before <= 3, "no video on audio only"
    finally:
        adaptive_link.close()
        full_link.close()
