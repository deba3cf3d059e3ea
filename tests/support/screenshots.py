"""Screenshots of the pages for the Vietnamese guide (``docs/vi/``), taken from a real server and a real
headless Chromium with its fake camera: the hall's speaker page and a point's page, in the states the
guide describes.

``python -m tests.support.screenshots [DIR]`` (``make screenshots``) writes them into ``docs/vi/img``;
``tests/test_screenshots.py`` runs the same ``shoot`` into a temporary folder and checks them.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bench.server_process import ServerProcess
from tests.support.browser import CHROMIUM_ARGS, Page, wait_for_chromium

ROOT = Path(__file__).resolve().parents[2]
GUIDE_IMAGES = ROOT / "docs" / "vi" / "img"
VIEWPORT = {"width": 1280, "height": 900}  # the status and figure lines under the video
# name -> what it shows; the guide refers to each by this name
SHOTS = {
    "speaker-preview.png": "the speaker page with the camera ready, before going live",
    "speaker-live.png": "the speaker page live, one point watching",
    "point-join-form.png": "a point page opened without the token in its link",
    "point-watching.png": "a point page playing the live conference",
    "point-headcount.png": "the headcount box after a report",
    "point-speaker-offline.png": "a point page while the hall has stopped sending",
}


def _page(browser, url: str) -> Page:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(15_000)
    page = Page(context.new_page())
    page.goto(url, wait_until="load")
    return page


def shoot(browser, server: ServerProcess, out: Path) -> list[Path]:  # type: ignore[no-untyped-def]
    """Take every screenshot of ``SHOTS`` into ``out`` with ``browser`` (Playwright, fake camera)."""
    out.mkdir(parents=True, exist_ok=True)
    conference = server.create_conference("Hội nghị học tập Nghị quyết")
    speaker_token = server.token(conference, "speaker", "Hội trường tỉnh")
    with server.admin() as c:  # a point of the conference's list: its headcount counts
        base = f"/api/v1/conferences/{conference}/points"
        point_id = c.post(base, json={"name": "Xã Tam Hồng", "level": "commune", "summoned": 50}).json()["id"]
        point_token = c.post(f"{base}/{point_id}/token").json()["token"]
    status = "document.getElementById('status').dataset.state"

    speaker = _page(browser, f"{server.url}/speaker.html#conference={conference}&token={speaker_token}")
    speaker.wait_until("!document.getElementById('golive').disabled", what="the camera preview ready")
    speaker.wait_until("document.getElementById('preview').currentTime > 0.5", what="the preview playing")
    speaker.screenshot(path=out / "speaker-preview.png")
    speaker.click("#golive")
    speaker.wait_until(f"{status} === 'live'", timeout=30, what="the speaker live")

    form = _page(browser, f"{server.url}/point.html")
    form.wait_until("!document.getElementById('join-form').hidden", what="the join form")
    form.screenshot(path=out / "point-join-form.png")
    form.context.close()

    point = _page(browser, f"{server.url}/point.html#conference={conference}&token={point_token}")
    point.wait_until(f"{status} === 'connected'", timeout=30, what="the point watching")
    point.wait_until("document.getElementById('remote').currentTime > 1.5", timeout=20, what="the picture playing")
    point.wait_until("document.getElementById('stats').textContent", what="the playback figures")
    point.screenshot(path=out / "point-watching.png")
    point.fill("#present", "45")
    point.click("#headcount-submit")
    point.wait_until("document.getElementById('headcount-status').dataset.present === '45'", what="the headcount")
    point.locator("#headcount-form").locator("xpath=..").screenshot(path=out / "point-headcount.png")

    speaker.wait_until("document.getElementById('watchers').dataset.count === '1'", what="one point watching")
    speaker.wait_until("document.getElementById('stats').textContent.includes('kbit/s')", what="the sending figures")
    speaker.screenshot(path=out / "speaker-live.png")
    speaker.click("#stop")
    point.wait_until(f"{status} === 'waiting'", timeout=20, what="the point told the hall stopped")
    point.evaluate("window.scrollTo(0, 0)")
    point.screenshot(path=out / "point-speaker-offline.png")
    for page in (speaker, point):
        page.context.close()
    return [out / name for name in SHOTS]


def main(out: Path = GUIDE_IMAGES) -> None:
    """A server of its own in a temporary folder, one Chromium, every screenshot into ``out``."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, ServerProcess(Path(tmp) / "data", env={"DIEMCAU_WORKERS": "1"}) as server:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=wait_for_chromium(), headless=True, args=CHROMIUM_ARGS)
            try:
                for path in shoot(browser, server, out):
                    print(path)
            finally:
                browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else GUIDE_IMAGES)
