"""The organiser dashboard in headless Chromium: tree of points, totals, live updates."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from bench.server_process import ROOT, ServerProcess

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out

CSV = (
    "name,level,parent,summoned\n"
    "Tỉnh Minh Sơn,province,,100\n"
    "Huyện Đông,district,Tỉnh Minh Sơn,40\nHuyện Tây,district,Tỉnh Minh Sơn,30\n"
    "Xã Bắc,commune,Huyện Đông,20\nXã Nam,commune,Huyện Đông,25\nXã Trung,commune,Huyện Tây,15\n"
)


def seeded(server: ServerProcess, title: str) -> tuple[str, str, dict[str, dict]]:
    """A conference with the CSV's six points: (conference id, organiser token, links by point name)."""
    cid = server.create_conference(title=title)
    organiser = server.token(cid, "organiser")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {organiser}"}, timeout=20) as c:
        assert c.post(f"/api/v1/conferences/{cid}/points/import", content=CSV.encode(),
                      headers={"content-type": "text/csv"}).status_code == 200
        links = c.post(f"/api/v1/conferences/{cid}/points/tokens").json()
    return cid, organiser, {x["name"]: x for x in links}


def test_dashboard_files_are_self_contained() -> None:
    """Works offline: no CDN, no absolute URLs in the page, its script or its stylesheet."""
    for path in ("web_client/dashboard.html", "web_client/js/dashboard.js", "web_client/css/dashboard.css"):
        text = (ROOT / path).read_text(encoding="utf-8")
        assert not re.search(r"https?://", text), path


@pytest.mark.browser
def test_dashboard_tree_and_live_status(server: ServerProcess, open_page) -> None:  # type: ignore[no-untyped-def]
    cid, organiser, links = seeded(server, "Hội nghị trực tuyến")
    token = {name: x["token"] for name, x in links.items()}
    ids = {name: x["point_id"] for name, x in links.items()}

    page = open_page(f"{server.url}/dashboard.html#conference={cid}&token={organiser}")
    page.wait_until("document.getElementById('total-points').textContent === '6'", what="points loaded")
    assert page.evaluate("document.getElementById('total-connected').textContent") == "0"
    assert page.evaluate("document.getElementById('conference-title').textContent") == "Hội nghị trực tuyến"
    # Province > districts > communes: each commune row sits inside its district's <details>.
    nested = f"document.querySelector('details[data-point-id=\"{ids['Huyện Đông']}\"] .row[data-point-id=\"{ids['Xã Nam']}\"]') !== null"
    assert page.evaluate(nested)
    page.wait_until("document.getElementById('status').dataset.state === 'connected'", what="live updates")

    ws = server.url.replace("http://", "ws://") + f"/ws/conferences/{cid}?token="
    with connect(ws + token["Tỉnh Minh Sơn"], proxy=None), connect(ws + token["Xã Bắc"], proxy=None) as commune:
        commune.send(json.dumps({"type": "headcount", "present": 18}))
        page.wait_until("document.getElementById('total-connected').textContent === '2'", timeout=20,
                        what="two points connected (pushed over the WebSocket)")
        row = f"document.querySelector('.row[data-point-id=\"{ids['Xã Bắc']}\"]')"
        page.wait_until(f"{row}.querySelector('.count').textContent === '18 / 20'", timeout=20, what="headcount")
        assert page.evaluate(f"{row}.dataset.connected") == "true"
        assert page.evaluate(f"{row}.querySelector('.rate').textContent") == "90.0%"
        assert page.evaluate("document.getElementById('total-reported').textContent") == "1 / 6"
        district = f"document.querySelector('details[data-point-id=\"{ids['Huyện Đông']}\"] > summary .sub')"
        assert page.evaluate(f"{district}.textContent").startswith("1/3")

        commune.close()
        page.wait_until(f"{row}.dataset.connected === 'false' && {row}.dataset.ever === 'true'", timeout=20,
                        what="commune shown as disconnected")
        assert page.evaluate("document.getElementById('total-connected').textContent") == "1"

        # Filter: only the points that are not connected (the province is hidden).
        page.select_option("#filter", "offline")
        shown = page.evaluate("[...document.querySelectorAll('#tree .row')].map(r => r.dataset.pointId)")
        assert ids["Tỉnh Minh Sơn"] not in shown[1:] and ids["Xã Bắc"] in shown and ids["Xã Trung"] in shown
        page.fill("#search", "trung")
        names = page.evaluate("[...document.querySelectorAll('#tree .leaf .name')].map(n => n.textContent)")
        assert names == ["Xã Trung"]

    # The report links carry no token (URLs end up in history and logs); a click fetches with it.
    href = page.evaluate("document.getElementById('report-html').getAttribute('href')")
    assert organiser not in href and "token" not in href
    assert httpx.get(server.url + href).status_code == 401
    with page.context.expect_page(timeout=15000) as popup:
        page.click("#report-html")
    report = popup.value
    report.wait_for_load_state(timeout=15000)
    assert "Hội nghị trực tuyến" in report.content()
    report.close()
    with page.expect_download(timeout=15000) as download:
        page.click("#report-csv")
    csv_text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert "Xã Bắc" in csv_text


@pytest.mark.browser
def test_point_page_reports_the_headcount(server: ServerProcess, open_page) -> None:  # type: ignore[no-untyped-def]
    """The operator types the delegates present; the server stores it for its own point and confirms."""
    cid, organiser, links = seeded(server, "Báo cáo quân số")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {organiser}"}, timeout=20) as c:
        page = open_page(f"{server.url}/point.html#conference={cid}&token={links['Xã Nam']['token']}")
        page.wait_until("window.diemcau.state.pointId !== null", what="snapshot names our point")
        assert page.evaluate("window.diemcau.state.pointId") == links["Xã Nam"]["point_id"]

        page.fill("#present", "23")
        page.click("#headcount-submit")
        page.wait_until("document.getElementById('headcount-status').dataset.present === '23'", timeout=20,
                        what="headcount confirmed")
        page.fill("#present", "24")  # updated during the session
        page.click("#headcount-submit")
        page.wait_until("document.getElementById('headcount-status').dataset.present === '24'", timeout=20,
                        what="updated headcount confirmed")
        status = c.get(f"/api/v1/conferences/{cid}/attendance/status").json()
        counts = {p["name"]: p["headcount"] for p in status["points"]}
        assert counts["Xã Nam"] == 24 and counts["Xã Bắc"] is None

        page.fill("#present", "5000000")  # beyond any room: refused with the reason, nothing stored
        page.evaluate("document.getElementById('present').removeAttribute('max')")
        page.click("#headcount-submit")
        page.wait_until("document.getElementById('headcount-status').textContent.includes('Refused')",
                        timeout=20, what="refusal shown")
        status = c.get(f"/api/v1/conferences/{cid}/attendance/status").json()
        assert {p["name"]: p["headcount"] for p in status["points"]}["Xã Nam"] == 24
