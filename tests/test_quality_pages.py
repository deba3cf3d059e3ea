"""Link quality on the pages, in headless Chromium against the real server (the shared one: an
ingest and two media workers, sampling every 5 s).

The point page watching over WHEP reports its getStats() every 5 s (the server's view of the point
then has the page's figures), shows the rendition it receives, follows the organiser's pin to audio
only and gives it back with its own control. The dashboard shows the speaker's stream, a point
gone poor with its frozen alert (a WebSocket client stands in for that point's page, so exactly
what it reports is known: frames that stop advancing), and the chart of a point.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest
from websockets.sync.client import connect

from bench.clip import test_clip
from bench.server_process import ROOT, ServerProcess
from tests.support.browser import Page
from tests.support.live_conference import LiveConference
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

CSV = (
    "name,level,parent,summoned\n"
    "Huyện Yên Lạc,district,,40\n"
    "Xã Tam Hồng,commune,Huyện Yên Lạc,20\n"
    "Xã Đồng Văn,commune,Huyện Yên Lạc,20\n"
)


class Live(LiveConference):
    """A conference with its points' join links, the speaker publishing a small clip."""

    def __init__(self, server: ServerProcess) -> None:
        super().__init__(server, "Chất lượng đường truyền", CSV,
                         test_clip(seconds=4.0, width=320, height=240, fps=15, kbps=300))

    def url(self, page: str, token: str) -> str:
        return f"{self.server.url}/{page}#conference={self.id}&token={token}"


@pytest.fixture(scope="module")
def live(server: ServerProcess) -> Iterator[Live]:
    conference = Live(server)
    yield conference
    conference.publisher.stop()


def test_page_files_are_self_contained() -> None:
    """Works offline, and names from the server are only ever set as text."""
    for name in ("css/quality.css", "js/quality_report.js", "js/quality_board.js", "js/quality_chart.js"):
        text = (ROOT / "web_client" / name).read_text(encoding="utf-8")
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), name
        assert not re.search(r"\.(innerHTML|outerHTML)\s*[+]?=|insertAdjacentHTML\(|document\.write", text), name


@pytest.mark.browser
def test_the_point_page_reports_and_shows_its_rendition(live: Live, open_page) -> None:  # type: ignore[no-untyped-def]
    name = "Xã Tam Hồng"
    link = live.links[name]
    point: Page = open_page(live.url("point.html", link["token"]))
    point.wait_until("window.diemcau.state.pointId !== null && window.diemcau.pc?.connectionState === 'connected'",
                     20, "the point watching")
    point.wait_until("window.diemcau.quality.reports >= 1", 15, "a quality report sent")
    row = wait_until(lambda: live.row(name), 20, "the page's figures at the server",
                     check=lambda r: r["figures"].get("fps") is not None and r["status"] == "watching")
    assert row["figures"]["fps"] > 5, row  # 15 fps published
    assert row["figures"]["frames_dropped_percent"] is not None and row["figures"]["jitter_buffer_ms"] is not None
    point.wait_until("document.getElementById('rendition').dataset.rendition === 'full'", 15, "the rendition shown")
    assert point.evaluate("document.getElementById('audio-only').hidden")

    # The organiser pins the point to audio only: the page says so at once (its session's event).
    with live.client() as c:
        r = c.post(f"/api/v1/conferences/{live.id}/points/{link['point_id']}/rendition", json={"rendition": "audio"})
        assert r.status_code == 200 and r.json()["sessions"] == 1, r.text
    point.wait_until("document.getElementById('rendition').dataset.rendition === 'audio'", 15, "audio only shown")
    point.wait_until("!document.getElementById('audio-only').hidden", 5, "the audio-only badge")
    point.wait_until("document.getElementById('rendition-pin').value === 'audio'", 15, "the pin shown")

    # The operator gives the choice back to adaptation from the page.
    point.select_option("#rendition-pin", "")
    point.wait_until("document.getElementById('rendition').dataset.rendition === 'full'", 15, "full again")
    point.wait_until("/Tự động|Automatic/.test(document.getElementById('rendition-status').textContent)", 5,
                     "the page confirms automatic")
    assert wait_until(lambda: live.row(name), 15, "no pin at the server", check=lambda r: r["pinned"] is None)


@pytest.mark.browser
def test_the_dashboard_shows_a_poor_point_and_its_alert(live: Live, open_page) -> None:  # type: ignore[no-untyped-def]
    name = "Xã Đồng Văn"
    link = live.links[name]
    dashboard: Page = open_page(live.url("dashboard.html", live.organiser))
    dashboard.wait_until("document.getElementById('speaker-live')?.dataset.live === 'true'", 20, "the speaker live")
    dashboard.wait_until("document.getElementById('speaker-resolution')?.textContent === '320×240'", 20,
                         "the speaker's picture size")
    ws_url = live.server.url.replace("http", "ws", 1) + f"/ws/conferences/{live.id}?token={link['token']}"
    with connect(ws_url, open_timeout=10, close_timeout=2) as page_socket:
        frames, started = 100, time.monotonic()
        row = f"#quality-rows tr[data-point-id='{link['point_id']}']"
        alert = f"#quality-alerts li[data-kind='frozen'][data-active='true'][data-point-id='{link['point_id']}']"
        while time.monotonic() - started < 40:
            if time.monotonic() - started < 2:
                frames += 15  # playing, then the picture stands still
            page_socket.send(json.dumps({
                "type": "quality.report", "v": 1, "session_id": None, "frames_decoded": frames, "frames_dropped": 0,
                "freeze_count": 0, "total_freeze_duration": 0, "jitter_buffer_delay_ms": 50,
                "available_incoming_bitrate": None, "rendition": None}))
            if dashboard.evaluate(f"Boolean(document.querySelector(\"{row}[data-quality='poor']\")"
                                  f" && document.querySelector(\"{alert}\"))"):
                break
            time.sleep(1.0)
        dashboard.wait_until(f"document.querySelector(\"{row}\")?.dataset.quality === 'poor'", 5, "the poor point")
        dashboard.wait_until(f"Boolean(document.querySelector(\"{alert}\"))", 5, "the frozen alert listed")
        text = dashboard.evaluate(f"document.querySelector(\"{alert}\").textContent")
        assert name in text and "5" in text, text
        # Worst first: the poor point heads the table.
        first = dashboard.evaluate("document.querySelector('#quality-rows tr')?.dataset.pointId")
        assert first == link["point_id"]
        assert "Kém" in dashboard.evaluate(f"document.querySelector(\"{row} .level\").textContent")

        dashboard.click(row)
        dashboard.wait_until("Number(document.querySelector('#quality-chart svg')?.dataset.samples) >= 1", 10,
                             "the point's chart")
        assert name in dashboard.evaluate("document.getElementById('quality-chart-title').textContent")
