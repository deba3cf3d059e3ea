"""The floor and the questions on the pages, in headless Chromium against the real server.

A connection point's page and the speaker's page, each in its own browser context with Chromium's
fake camera and microphone: the point raises its hand, the speaker page grants it, the point's page
publishes over WHIP and the speaker page plays the point on the hall's screen; then the floor ends
and everything goes back to the speaker. The point asks for the floor at 640×360 and the hall's
camera at 1280×720, so the size of a decoded picture says whose camera it came from.
Written questions go from the point's box to the speaker's board and back (selected, answered),
with the server's 422 and 429 shown to the operator. The dashboard runs the moderation controls.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from bench.server_process import ROOT, ServerProcess
from tests.support.browser import Page

pytestmark = pytest.mark.slow

CSV = (
    "name,level,parent,summoned\n"
    "Huyện Đông,district,,40\n"
    "Xã Tân Lập,commune,Huyện Đông,20\n"
)

SPEAKER_SENDING = """async () => {
  const pc = window.pc;
  if (!pc || pc.connectionState !== "connected") return null;
  const report = await pc.getStats();
  let v = null;
  report.forEach((s) => { if (s.type === "outbound-rtp" && s.kind === "video") v = s; });
  return v && v.framesEncoded > 0;
}"""

# The size and clock of a <video>, once it shows a picture.
PICTURE = """(selector) => {
  const v = document.querySelector(selector);
  return v && v.videoWidth > 0 ? { width: v.videoWidth, height: v.videoHeight, time: v.currentTime,
                                   paused: v.paused, muted: v.muted } : null;
}"""

# What the speaker page's hall playback (its WHEP session while a point speaks) has received.
HALL_RECEIVED = """async () => {
  const pc = window.diemcau.hall && window.diemcau.hall.pc;
  if (!pc || pc.connectionState !== "connected") return null;
  const report = await pc.getStats();
  const out = { frames: 0, audioPackets: 0 };
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") out.frames = s.framesDecoded || 0;
    if (s.type === "inbound-rtp" && s.kind === "audio") out.audioPackets = s.packetsReceived || 0;
  });
  return out;
}"""


def seeded(server: ServerProcess, title: str) -> tuple[str, str, dict[str, dict]]:
    """A conference with two points: (conference id, organiser token, operator links by point name)."""
    cid = server.create_conference(title=title)
    organiser = server.token(cid, "organiser")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {organiser}"}, timeout=20) as c:
        assert c.post(f"/api/v1/conferences/{cid}/points/import", content=CSV.encode(),
                      headers={"content-type": "text/csv"}).status_code == 200
        links = c.post(f"/api/v1/conferences/{cid}/points/tokens").json()
    return cid, organiser, {x["name"]: x for x in links}


def page_url(server: ServerProcess, page: str, conference: str, token: str) -> str:
    return f"{server.url}/{page}#conference={conference}&token={token}"


def open_point(open_page, server: ServerProcess, conference: str, link: dict) -> Page:  # type: ignore[no-untyped-def]
    """A point's page from its join link, once the WebSocket told it which point it is."""
    point = open_page(page_url(server, "point.html", conference, link["token"]))
    point.wait_until(f"window.diemcau.state.pointId === {link['point_id']!r}", 15, "snapshot names our point")
    point.wait_until("!document.getElementById('raise-hand').disabled", 10, "raise hand enabled")
    return point


def open_speaker(open_page, server: ServerProcess, conference: str, live: bool) -> tuple[Page, dict]:  # type: ignore[no-untyped-def]
    """The speaker page (its camera's settings), live over WHIP when ``live``."""
    speaker = open_page(page_url(server, "speaker.html", conference, server.token(conference, "speaker")))
    source = speaker.wait_until("window.diemcau.sourceSettings()", 15, "camera preview")
    if live:
        speaker.wait_until("!document.getElementById('golive').disabled", 5, "Go live enabled")
        speaker.click("#golive")
        speaker.wait_until(SPEAKER_SENDING, 20, "speaker live")
    return speaker, source


def floor_state(server: ServerProcess, conference: str, token: str) -> dict:
    r = httpx.get(f"{server.url}/api/v1/conferences/{conference}/floor",
                  headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def picture(page: Page, selector: str) -> dict | None:
    return page.evaluate(f"({PICTURE})({selector!r})")


def wait_picture(page: Page, selector: str, width: int, height: int, timeout: float, what: str) -> dict:
    """Until ``selector`` shows a ``width``×``height`` picture whose clock advances."""
    first = page.wait_until(
        f"(() => {{ const p = ({PICTURE})({selector!r}); "
        f"return p && p.width === {width} && p.height === {height} ? p : null; }})()",
        timeout, what)
    page.wait_until(
        f"(() => {{ const p = ({PICTURE})({selector!r}); "
        f"return p && p.width === {width} && p.time > {first['time']} + 1; }})()",
        10, f"{what}: playing")
    return first


def test_page_files_are_self_contained() -> None:
    """Works offline: no CDN or absolute URL in the floor and question modules and their stylesheet."""
    names = ["css/floor.css", "js/rest.js", "js/dom.js", "js/format.js", "js/floor.js", "js/floor_hand.js",
             "js/floor_publish.js", "js/floor_queue.js", "js/floor_history.js", "js/hall_playback.js",
             "js/moderation.js", "js/questions.js", "js/question_box.js", "js/question_board.js",
             "js/question_card.js"]
    for name in names:
        text = (ROOT / "web_client" / name).read_text(encoding="utf-8")
        assert not re.search(r"https?://", text), name
        # Participants' names, subjects and questions are only ever set as text.
        assert not re.search(r"\.(innerHTML|outerHTML)\s*[+]?=|insertAdjacentHTML\(|document\.write", text), name


@pytest.mark.browser
def test_point_takes_the_floor_and_the_hall_plays_it(server: ServerProcess, open_page) -> None:  # type: ignore[no-untyped-def]
    cid, organiser, links = seeded(server, "Phát biểu từ điểm cầu")
    link = links["Xã Tân Lập"]
    point_id = link["point_id"]
    speaker, hall_camera = open_speaker(open_page, server, cid, live=True)
    point = open_point(open_page, server, cid, link)
    wait_picture(point, "#remote", hall_camera["width"], hall_camera["height"], 20, "the point watches the hall")

    # Raise the hand with a subject: the speaker's queue shows the point with its level and subject.
    point.fill("#hand-subject", "Kiến nghị về đường giao thông nông thôn")
    point.click("#raise-hand")
    point.wait_until("document.getElementById('floor-status').dataset.floor === 'queued'", 10, "queued")
    assert point.evaluate("document.getElementById('floor-status').dataset.position") == "1"
    entry = f"#floor-queue li[data-point-id='{point_id}']"
    speaker.wait_until(f"document.querySelector({entry!r}) !== null", 10, "the hand in the speaker's queue")
    shown = speaker.text_content(entry)
    assert "Xã Tân Lập" in shown and "Kiến nghị về đường giao thông nông thôn" in shown and "Commune" in shown
    assert not speaker.is_visible("#floor-stage")

    # Grant: the point's page speaks (camera + microphone over WHIP, self-view).
    granted = time.monotonic()
    speaker.click(f"{entry} button.grant")
    point.wait_until("document.getElementById('floor-status').dataset.floor === 'speaking'", 10, "speaking")
    mine = point.wait_until("window.diemcau.publisher.stream && window.diemcau.publisher.stream.getVideoTracks()[0].getSettings()",
                            15, "camera open")
    assert (mine["width"], mine["height"]) != (hall_camera["width"], hall_camera["height"])
    wait_picture(point, "#self-view", mine["width"], mine["height"], 10, "self-view")
    point.wait_until("window.diemcau.publisher.pc && window.diemcau.publisher.pc.connectionState === 'connected'",
                     20, "WHIP connected")
    assert point.evaluate("window.diemcau.publisher.session.token") == link["token"]  # its own token
    assert point.is_visible("#give-back")

    # The hall's screen plays the point's camera (its size, not the hall's), with its sound.
    speaker.wait_until("!document.getElementById('floor-stage').hidden", 10, "the point's stage shown")
    wait_picture(speaker, "#floor-video", mine["width"], mine["height"], 20, "the hall shows the point")
    print(f"\nthe hall shows the point {time.monotonic() - granted:.1f}s after the grant")
    first = speaker.wait_until(f"(async () => {{ const s = await ({HALL_RECEIVED})(); return s && s.audioPackets > 0 ? s : null; }})()",
                               10, "the point's audio reaches the hall")
    speaker.wait_until(f"(async () => {{ const s = await ({HALL_RECEIVED})(); "
                       f"return s && s.frames > {first['frames']} + 25 && s.audioPackets > {first['audioPackets']} + 25; }})()",
                       10, "the point's video and audio keep coming")
    assert picture(speaker, "#floor-video")["muted"] is False, "the hall must hear the point"
    speaker.wait_until("document.getElementById('floor-current').dataset.media === 'live'", 10, "chair sees it live")
    holder = speaker.text_content("#floor-current")
    assert "Xã Tân Lập" in holder and "Kiến nghị về đường giao thông nông thôn" in holder
    assert "null" not in holder and "undefined" not in holder
    # The hall's own playback is not a point watching.
    assert speaker.evaluate("document.getElementById('watchers').dataset.count") == "1"
    # Mute: the point's operator is told; unmute again.
    speaker.click("#floor-current button.mute")
    point.wait_until("document.getElementById('floor-status').textContent.includes('tắt micro')", 10, "muted shown")
    assert floor_state(server, cid, organiser)["current"]["muted"] is True
    speaker.wait_until("document.querySelector('#floor-current .muted-badge') !== null", 10, "chair sees it muted")
    speaker.click("#floor-current button.mute")
    point.wait_until("!document.getElementById('floor-status').textContent.includes('tắt micro')", 10, "unmuted")
    # Every subscriber follows the floor: the point's own program shows the point too.
    wait_picture(point, "#remote", mine["width"], mine["height"], 15, "the program shows the point")
    assert floor_state(server, cid, organiser)["current"]["point_id"] == point_id

    # The chair ends it: the point stops publishing, the hall's playback closes, all back to the hall.
    speaker.click("#floor-current button.end")
    point.wait_until("document.getElementById('floor-status').dataset.floor === 'ended'", 10, "ended")
    point.wait_until("!window.diemcau.publisher.running && window.diemcau.publisher.stream === null"
                     " && document.getElementById('self-view').srcObject === null", 10, "camera released")
    assert not point.is_visible("#speaking")
    speaker.wait_until("document.getElementById('floor-stage').hidden && !window.diemcau.hall.running", 10,
                       "hall playback closed")
    wait_picture(point, "#remote", hall_camera["width"], hall_camera["height"], 15, "the program is the hall again")
    assert floor_state(server, cid, organiser)["current"] is None
    with server.admin() as admin:
        producers = admin.get("/api/v1/media/stats").json()["producers"].values()
    assert [p["role"] for p in producers if p["conference"] == cid] == ["speaker"]

    # Again with a time limit; this time the point gives the floor back itself.
    point.click("#raise-hand")
    speaker.wait_until(f"document.querySelector({entry!r}) !== null", 10, "raised again")
    speaker.select_option("#floor select[name=limit]", "300")
    speaker.click(f"{entry} button.grant")
    point.wait_until("document.getElementById('floor-status').dataset.floor === 'speaking'", 10, "speaking again")
    point.wait_until("document.getElementById('floor-timer').textContent.includes('còn')", 5, "time left shown")
    assert floor_state(server, cid, organiser)["current"]["limit_seconds"] == 300
    speaker.wait_until("!document.getElementById('floor-stage').hidden", 10, "stage shown again")
    point.click("#give-back")
    point.wait_until("document.getElementById('floor-status').dataset.floor === 'ended'", 10, "given back")
    speaker.wait_until("document.getElementById('floor-stage').hidden", 10, "stage hidden")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {organiser}"}, timeout=10) as c:
        history = c.get(f"/api/v1/conferences/{cid}/floor/history").json()
    ended = [(e["reason"], e["subject"]) for e in history if e["kind"] == "ended"]
    assert ended == [("chair", "Kiến nghị về đường giao thông nông thôn"),
                     ("returned", "Kiến nghị về đường giao thông nông thôn")]
    assert not point.evaluate("document.getElementById('floor-error').textContent")
    assert not speaker.evaluate("document.getElementById('floor-error').textContent")


@pytest.mark.browser
def test_question_box_to_the_speakers_board(server: ServerProcess, open_page) -> None:  # type: ignore[no-untyped-def]
    cid, _, links = seeded(server, "Câu hỏi bằng văn bản")
    link = links["Xã Tân Lập"]
    speaker, _ = open_speaker(open_page, server, cid, live=False)
    point = open_point(open_page, server, cid, link)

    text = "Xin hỏi lộ trình hỗ trợ hộ nghèo năm 2027?"
    point.fill("#question-text", text)
    point.click("#question-submit")
    point.wait_until("document.getElementById('question-status').dataset.state === 'sent'", 10, "sent")
    assert point.text_content("#my-questions").count(text) == 1
    item = "#questions li.question"
    speaker.wait_until(f"[...document.querySelectorAll({item!r})].some(li => li.textContent.includes({text!r}))",
                       10, "the question on the board")
    assert "Xã Tân Lập" in speaker.text_content(item)

    # Selected: shown on the point's page (and the speaker's); answered: the point reads the answer.
    speaker.click(f"{item} button.select")
    point.wait_until(f"!document.getElementById('selected-question').hidden && "
                     f"document.getElementById('selected-question').textContent.includes({text!r})", 10, "selected shown")
    speaker.wait_until("!document.getElementById('selected-question').hidden", 10, "selected on the speaker page")
    on_floor = point.text_content("#selected-question")
    assert "Xã Tân Lập" in on_floor and "null" not in on_floor
    speaker.fill(f"{item} textarea[name=answer]", "Từ quý I năm 2027, theo Nghị quyết của tỉnh.")
    speaker.click(f"{item} button.answer-save")
    speaker.wait_until(f"document.querySelector({item!r}).dataset.status === 'answered'", 10, "answered on the board")
    point.wait_until("document.getElementById('selected-question').hidden", 10, "nothing selected any more")
    point.wait_until("[...document.querySelectorAll('#my-questions li')].some(li => li.dataset.status === 'answered'"
                     " && li.textContent.includes('Từ quý I năm 2027'))", 10, "the answer on the point's page")

    # Too long: the server's 422 is shown (the box's own limit taken off, as a modified page would).
    point.evaluate("document.getElementById('question-text').removeAttribute('maxlength')")
    point.fill("#question-text", "x" * 501)
    point.click("#question-submit")
    point.wait_until("document.getElementById('question-status').dataset.code === '422'", 10, "422 shown")
    assert "500" in point.text_content("#question-status")

    # Ten a minute: the 11th is refused with the wait.
    for n in range(2, 11):
        point.fill("#question-text", f"Câu hỏi số {n}")
        point.click("#question-submit")
        point.wait_until(f"document.getElementById('question-status').dataset.state === 'sent' && "
                         f"document.querySelectorAll('#my-questions li').length === {n}", 10, f"question {n} sent")
    point.fill("#question-text", "Câu hỏi số 11")
    point.click("#question-submit")
    point.wait_until("document.getElementById('question-status').dataset.code === '429'", 10, "429 shown")
    assert "vui lòng chờ" in point.text_content("#question-status")
    speaker.wait_until(f"document.querySelectorAll({item!r}).length === 10", 10, "ten questions on the board")

    # A duplicate merged on the board counts towards the question it repeats.
    target = point.evaluate("[...document.querySelectorAll('#my-questions li')].find(li => li.textContent.includes('số 2')).dataset.questionId")
    dup_id = speaker.evaluate(f"[...document.querySelectorAll({item!r})].find(li => li.textContent.includes('số 3')).dataset.questionId")
    row = f"{item}[data-question-id='{dup_id}']"
    speaker.select_option(f"{row} select[name=into]", target)
    speaker.click(f"{row} button.merge")
    speaker.wait_until(f"document.querySelector({row!r}) === null && "
                       f"document.querySelector(\"{item}[data-question-id='{target}'] .votes\")?.textContent === '+1'",
                       10, "merged")


@pytest.mark.browser
def test_dashboard_moderates_the_floor(server: ServerProcess, open_page) -> None:  # type: ignore[no-untyped-def]
    cid, organiser, links = seeded(server, "Điều hành phát biểu")
    link = links["Xã Tân Lập"]
    point_id = link["point_id"]
    dashboard = open_page(f"{server.url}/dashboard.html#conference={cid}&token={organiser}")
    dashboard.wait_until("document.getElementById('status').dataset.state === 'connected'", 15, "live updates")
    point = open_point(open_page, server, cid, link)

    point.click("#raise-hand")
    entry = f"#floor-queue li[data-point-id='{point_id}']"
    dashboard.wait_until(f"document.querySelector({entry!r}) !== null", 10, "the hand on the dashboard")

    # Lock: no new hands (the point's button goes off; the queued one stays).
    dashboard.click("#floor button.lock")
    point.wait_until("document.getElementById('raise-hand').textContent.includes('Sửa')", 10, "still queued")
    dashboard.wait_until("document.querySelector('#floor button.lock').dataset.locked === 'true'", 10, "locked")
    assert floor_state(server, cid, organiser)["locked"] is True
    point.click("#lower-hand")
    point.wait_until("document.getElementById('floor-status').textContent.includes('khóa')", 10, "locked shown")
    assert point.evaluate("document.getElementById('raise-hand').disabled")
    dashboard.click("#floor button.lock")
    point.wait_until("!document.getElementById('raise-hand').disabled", 10, "unlocked")

    # Invite a point that did not ask (the dashboard lists every point), then end all.
    dashboard.wait_until(f"document.querySelector(\"#floor select[name=invite] option[value='{point_id}']\") !== null",
                         10, "points to invite")
    dashboard.select_option("#floor select[name=invite]", point_id)
    dashboard.click("#floor button.invite")
    point.wait_until("document.getElementById('floor-status').dataset.floor === 'speaking'", 10, "invited")
    dashboard.wait_until(f"document.getElementById('floor-current').dataset.pointId === {point_id!r}", 10, "holder shown")
    dashboard.click("#floor button.end-all")
    assert floor_state(server, cid, organiser)["current"] is not None, "end all asks for a second press"
    dashboard.click("#floor button.end-all")
    point.wait_until("document.getElementById('floor-status').dataset.floor === 'ended'", 10, "ended by end all")
    dashboard.click("#floor-history-box summary")
    dashboard.wait_until("[...document.querySelectorAll('#floor-history li')].some(li => li.dataset.kind === 'ended')",
                         10, "history shown")

    # Remove the participant: its token stops working at once.
    dashboard.select_option("#remove-point", point_id)
    dashboard.click("#remove-submit")
    dashboard.click("#remove-submit")
    dashboard.wait_until("document.getElementById('remove-status').dataset.state === 'removed'", 10, "removed")
    r = httpx.get(f"{server.url}/api/v1/conferences/{cid}/floor", headers={"Authorization": f"Bearer {link['token']}"})
    assert r.status_code == 401
    point.wait_until("document.getElementById('error').textContent.includes('thu hồi')", 15,
                     "the point's page says its link no longer works")
    assert point.evaluate("!window.diemcau.state.events.running")


@pytest.mark.browser
def test_dashboard_question_export(server: ServerProcess, open_page) -> None:  # type: ignore[no-untyped-def]
    """The question board on the dashboard, and its CSV fetched with the token in a header."""
    cid, organiser, links = seeded(server, "Xuất câu hỏi")
    point_token = links["Xã Tân Lập"]["token"]
    r = httpx.post(f"{server.url}/api/v1/conferences/{cid}/questions", json={"text": "Câu hỏi cần chuyển tiếp"},
                   headers={"Authorization": f"Bearer {point_token}"})
    assert r.status_code == 201, r.text
    dashboard = open_page(f"{server.url}/dashboard.html#conference={cid}&token={organiser}")
    dashboard.wait_until("document.querySelectorAll('#questions li.question').length === 1", 15, "board loaded")
    with dashboard.expect_download(timeout=15000) as download:
        dashboard.click("#questions-csv")
    csv_text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert "Câu hỏi cần chuyển tiếp" in csv_text and "Xã Tân Lập" in csv_text


@pytest.mark.browser
def test_viewer_page_asks_before_the_broadcast(server: ServerProcess, open_page) -> None:  # type: ignore[no-untyped-def]
    """A member at home asks from the live viewer page before anything is live; the question the
    chair selected (another participant's) is shown, not listed as the viewer's own."""
    cid, organiser, links = seeded(server, "Hỏi trước hội nghị")
    chair = {"Authorization": f"Bearer {organiser}"}
    r = httpx.post(f"{server.url}/api/v1/conferences/{cid}/questions", json={"text": "Câu hỏi của xã"},
                   headers={"Authorization": f"Bearer {links['Xã Tân Lập']['token']}"})
    assert r.status_code == 201, r.text
    assert httpx.patch(f"{server.url}/api/v1/conferences/{cid}/questions/{r.json()['id']}",
                       json={"status": "selected"}, headers=chair).status_code == 200

    viewer = open_page(page_url(server, "viewer.html", cid, server.token(cid, "viewer", "Nguyễn Văn An")))
    viewer.wait_until("document.getElementById('selected-question')?.textContent.includes('Câu hỏi của xã')", 15,
                      "the selected question")
    assert viewer.evaluate("document.querySelectorAll('#my-questions li').length") == 0
    viewer.fill("#question-text", "Tài liệu học tập có bản in không?")
    viewer.click("#question-submit")
    viewer.wait_until("document.getElementById('question-status').dataset.state === 'sent'", 10, "sent")
    assert viewer.evaluate("[...document.querySelectorAll('#my-questions li')].map(li => li.textContent)")[0].startswith(
        "Tài liệu học tập có bản in không?")
    listed = httpx.get(f"{server.url}/api/v1/conferences/{cid}/questions", headers=chair).json()
    mine = [q for q in listed if q["text"] == "Tài liệu học tập có bản in không?"]
    assert [(q["author_kind"], q["author_name"]) for q in mine] == [("viewer", "Nguyễn Văn An")]


@pytest.mark.browser
def test_time_limit_warning_on_both_pages(start_server, open_page) -> None:  # type: ignore[no-untyped-def]
    """A time limit set on the speaker page: the warning reaches the point and the chair (here 57 s
    before the minute is up, so 3 s after the grant). The end at the limit is the floor API's test."""
    with start_server("floor-warning", workers=1, floor_warning_seconds=57) as server:
        cid, organiser, links = seeded(server, "Giới hạn thời gian")
        link = links["Xã Tân Lập"]
        speaker, _ = open_speaker(open_page, server, cid, live=False)
        point = open_point(open_page, server, cid, link)
        point.click("#raise-hand")
        entry = f"#floor-queue li[data-point-id='{link['point_id']}']"
        speaker.wait_until(f"document.querySelector({entry!r}) !== null", 10, "queued")
        speaker.select_option("#floor select[name=limit]", "60")
        speaker.click(f"{entry} button.grant")
        point.wait_until("document.getElementById('floor-status').dataset.floor === 'speaking'", 10, "speaking")
        assert point.evaluate("document.getElementById('floor-timer').dataset.warning") == "false"
        point.wait_until("document.getElementById('floor-timer').dataset.warning === 'true'"
                         " && document.getElementById('floor-timer').textContent.includes('Sắp hết giờ')", 10, "warned")
        speaker.wait_until("document.querySelector('#floor-current .warning')?.textContent.includes('còn')", 10,
                           "chair warned")
        assert floor_state(server, cid, organiser)["current"]["limit_seconds"] == 60
