"""Real headless Chromium on the speaker and connection-point pages, against the real server.

The speaker page publishes Chromium's fake camera + microphone over WHIP; point pages play it over
WHEP. We check that video is decoded at the source size, that the speaker sees how many points are
watching, that a point reconnects by itself when its session or the whole server goes away, and that
the pages use only the ICE servers the server advertises (none in tests: no public STUN).
"""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
from aioice import stun

from tests.support.browser import Page
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Inbound stats of the point page's current RTCPeerConnection (window.pc), plus the <video> size.
POINT_STATS = """async () => {
  // Read the session before awaiting getStats(): the supervisor may replace it meanwhile.
  const session = window.diemcau.session;
  const pc = session && session.pc;
  const url = session && session.url;
  const reconnects = window.diemcau.supervisor ? window.diemcau.supervisor.reconnects : 0;
  if (!pc || !url || pc.connectionState === "closed") return null;
  const report = await pc.getStats();
  let v = null, a = null;
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") v = s;
    if (s.type === "inbound-rtp" && s.kind === "audio") a = s;
  });
  const codec = v && v.codecId ? report.get(v.codecId) : null;
  const video = document.getElementById("remote");
  return {
    session: url,
    reconnects,
    connection: pc.connectionState,
    framesDecoded: v ? v.framesDecoded || 0 : 0,
    frameWidth: v ? v.frameWidth : null,
    frameHeight: v ? v.frameHeight : null,
    codec: codec ? codec.mimeType : null,
    fmtp: codec ? codec.sdpFmtpLine : null,
    audioPackets: a ? a.packetsReceived : 0,
    videoWidth: video.videoWidth,
    videoHeight: video.videoHeight,
    paused: video.paused,
  };
}"""

SPEAKER_STATS = """async () => {
  const pc = window.pc;
  if (!pc || pc.connectionState !== "connected") return null;
  const report = await pc.getStats();
  let v = null;
  report.forEach((s) => { if (s.type === "outbound-rtp" && s.kind === "video") v = s; });
  if (!v || !v.framesEncoded) return null;
  const codec = v.codecId ? report.get(v.codecId) : null;
  return { framesEncoded: v.framesEncoded, frameWidth: v.frameWidth, frameHeight: v.frameHeight,
           codec: codec ? codec.mimeType : null, fmtp: codec ? codec.sdpFmtpLine : null,
           encoder: v.encoderImplementation || null };
}"""


def page_url(server: ServerProcess, page: str, conference: str, token: str) -> str:
    return f"{server.url}/{page}#conference={conference}&token={token}"


def go_live(open_page, server: ServerProcess, conference: str) -> tuple[Page, dict]:  # type: ignore[no-untyped-def]
    """Speaker page with its fake camera, live over WHIP; returns the page and the camera settings."""
    speaker = open_page(page_url(server, "speaker.html", conference, server.token(conference, "speaker")))
    source = speaker.wait_until("window.diemcau.sourceSettings()", 15, "camera preview")
    speaker.wait_until("!document.getElementById('golive').disabled", 5, "Go live enabled")
    speaker.click("#golive")
    speaker.wait_until(SPEAKER_STATS, 15, "speaker encoding and connected")
    speaker.wait_until("document.getElementById('status').dataset.state === 'live'", 5, "live status")
    return speaker, source


def watch(open_page, server: ServerProcess, conference: str, name: str = "") -> Page:  # type: ignore[no-untyped-def]
    """A connection-point page opened from its join link (it starts watching by itself)."""
    return open_page(page_url(server, "point.html", conference, server.token(conference, "point", name)))


def wait_frames(point: Page, at_least: int, timeout: float, session: str | None = None, not_session: str | None = None) -> dict:
    """Poll getStats() until the current session decoded ``at_least`` frames; returns the stats."""
    cond = f"(s && s.framesDecoded >= {at_least}"
    if session:
        cond += f" && s.session === {session!r}"
    if not_session:
        cond += f" && s.session !== {not_session!r}"
    cond += ")"
    return point.wait_until(f"(async () => {{ const s = await ({POINT_STATS})(); return {cond} ? s : null; }})()",
                            timeout, f"{at_least} frames decoded")


def watcher_count(speaker: Page) -> int:
    return int(speaker.evaluate("document.getElementById('watchers').dataset.count"))


def test_speaker_page_publishes_and_point_page_decodes_at_source_size(server, open_page):  # type: ignore[no-untyped-def]
    conference = server.create_conference("Chromium end to end")
    speaker, source = go_live(open_page, server, conference)
    point = watch(open_page, server, conference, "Xã Tân Lập")

    started = time.monotonic()
    first = wait_frames(point, 15, 20)
    later = wait_frames(point, first["framesDecoded"] + 20, 10, session=first["session"])
    stats = point.wait_until(
        f"(async () => {{ const s = await ({POINT_STATS})(); "
        f"return s && s.videoWidth === {source['width']} && s.videoHeight === {source['height']} ? s : null; }})()",
        10,
        "<video> at the source size",
    )
    sent = speaker.evaluate(SPEAKER_STATS)
    print(
        f"\nsource {source['width']}x{source['height']}@{source.get('frameRate')} | sent {sent} | "
        f"received {stats['codec']} [{stats['fmtp']}] {stats['frameWidth']}x{stats['frameHeight']} "
        f"video {stats['videoWidth']}x{stats['videoHeight']} | first frames after {time.monotonic() - started:.1f}s"
    )
    assert later["framesDecoded"] > first["framesDecoded"]
    assert (stats["videoWidth"], stats["videoHeight"]) == (source["width"], source["height"])
    assert (stats["frameWidth"], stats["frameHeight"]) == (source["width"], source["height"])
    # H.264 is preferred by the speaker page (setCodecPreferences) and by the relay.
    assert sent["codec"] == "video/H264" and stats["codec"] == "video/H264"
    assert point.wait_until(f"(async () => {{ const s = await ({POINT_STATS})(); return s && s.audioPackets > 20; }})()",
                            5, "audio packets")
    assert not stats["paused"], "the muted <video> should autoplay"
    # The unmute button is there and works.
    point.click("#unmute")
    assert point.evaluate("document.getElementById('remote').muted") is False
    # No ICE servers advertised in tests (DIEMCAU_ICE_SERVERS=[]): the pages must not invent any.
    assert speaker.evaluate("window.pc.getConfiguration().iceServers") == []
    assert point.evaluate("window.pc.getConfiguration().iceServers") == []

    # A second Chromium point lands on the other media worker (sharded server): it decodes too.
    second = watch(open_page, server, conference, "Xã Hòa Bình")
    wait_frames(second, 15, 20)
    with server.admin() as admin:
        consumers = admin.get("/api/v1/media/stats").json()["consumers"]
    ours = [c for c in consumers.values() if c["conference"] == conference]
    assert {c.get("worker", 0) for c in ours} == {1, 2}
    # Chromium's nominated pair holds: each point's socket is connected to it (media.transport.pinned_path)
    # and its audio rides in its video's sends.
    assert all(c["path_pinned"] and c["paired"] for c in ours), ours


def test_speaker_page_counts_watching_points(server, open_page):  # type: ignore[no-untyped-def]
    conference = server.create_conference("Đếm điểm cầu")
    speaker = open_page(page_url(server, "speaker.html", conference, server.token(conference, "speaker")))
    speaker.wait_until("document.getElementById('watchers').dataset.count === '0'", 10, "count 0")

    first = watch(open_page, server, conference, "Điểm 1")
    second = watch(open_page, server, conference, "Điểm 2")
    speaker.wait_until("document.getElementById('watchers').dataset.count === '2'", 15, "count 2")
    assert "2" in speaker.text_content("#watchers")

    second.click("#stop")  # DELETE of the WHEP session
    speaker.wait_until("document.getElementById('watchers').dataset.count === '1'", 10, "count back to 1")
    first.page.close(run_before_unload=True)  # pagehide sends a keepalive DELETE
    speaker.wait_until("document.getElementById('watchers').dataset.count === '0'", 10, "count back to 0")


def test_point_page_reconnects_when_server_ends_its_session(server, open_page):  # type: ignore[no-untyped-def]
    conference = server.create_conference("Tự kết nối lại")
    go_live(open_page, server, conference)
    point = watch(open_page, server, conference)
    before = wait_frames(point, 15, 20)

    with server.admin() as admin:
        consumers = admin.get("/api/v1/media/stats").json()["consumers"]
        ours = [cid for cid, c in consumers.items() if c["conference"] == conference]
        assert len(ours) == 1 and before["session"].endswith("/" + ours[0])
        started = time.monotonic()
        assert admin.delete(f"/whep/{conference}/{ours[0]}").status_code == 200

    after = wait_frames(point, 15, 20, not_session=before["session"])
    print(f"\nnew WHEP session decoding {time.monotonic() - started:.1f}s after the server dropped the old one")
    assert after["reconnects"] == 1
    assert (after["videoWidth"], after["videoHeight"]) == (before["videoWidth"], before["videoHeight"])


def test_pages_recover_after_server_restart(fresh_server, open_page):  # type: ignore[no-untyped-def]
    """kill -9 the server: no DELETE, no DTLS close: both pages notice the dead link and come back."""
    server = fresh_server
    conference = server.create_conference("Máy chủ khởi động lại")
    speaker, _ = go_live(open_page, server, conference)
    point = watch(open_page, server, conference)
    before = wait_frames(point, 15, 20)
    speaker.wait_until("document.getElementById('watchers').dataset.count === '1'", 10, "count 1")

    server.kill9()
    started = time.monotonic()
    server.start()
    after = wait_frames(point, 15, 45, not_session=before["session"])
    print(f"\npoint decoding again {time.monotonic() - started:.1f}s after kill -9 + restart")
    assert after["reconnects"] >= 1
    speaker.wait_until("window.diemcau.supervisor.reconnects >= 1 && window.diemcau.supervisor.connected", 10,
                       "speaker republished")
    # The speaker's event channel reconnected too and shows the point again.
    speaker.wait_until("document.getElementById('watchers').dataset.count === '1'", 15, "count 1 after restart")


class StunResponder:
    """Minimal STUN server on 127.0.0.1 answering Binding requests (so advertised STUN is reachable)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(2048)
                request = stun.parse_message(data)
            except (TimeoutError, socket.timeout, ValueError, OSError):
                continue
            if request.message_method != stun.Method.BINDING or request.message_class != stun.Class.REQUEST:
                continue
            self.requests += 1
            response = stun.Message(
                message_method=stun.Method.BINDING,
                message_class=stun.Class.RESPONSE,
                transaction_id=request.transaction_id,
            )
            response.attributes["XOR-MAPPED-ADDRESS"] = addr
            self.sock.sendto(bytes(response), addr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def test_pages_use_exactly_the_advertised_ice_servers(start_server, open_page):  # type: ignore[no-untyped-def]
    stun_server = StunResponder()
    advertised = [{"urls": f"stun:127.0.0.1:{stun_server.port}"}]
    server = start_server(ice_servers=advertised)
    try:
        conference = server.create_conference("ICE")
        viewer = server.token(conference, "viewer")  # ICE servers are for callers with a token only
        links = httpx.options(f"{server.url}/whep/{conference}",
                              headers={"Authorization": f"Bearer {viewer}"}).headers.get_list("link")
        assert links == [f'<stun:127.0.0.1:{stun_server.port}>; rel="ice-server"']
        speaker, _ = go_live(open_page, server, conference)
        point = watch(open_page, server, conference)
        wait_frames(point, 5, 20)
        for page in (speaker, point):
            used = page.evaluate("window.pc.getConfiguration().iceServers.map((s) => [].concat(s.urls))")
            assert used == [[advertised[0]["urls"]]]
        assert stun_server.requests > 0, "Chromium or the server never asked the advertised STUN server"

        # Link parsing as the server formats TURN entries (several headers joined by ", ").
        parsed = point.evaluate(
            """async () => (await import('/js/whip_whep.js')).parseIceLinks(
                 '<stun:stun.example.net:3478>; rel="ice-server", '
                 + '<turn:turn.example.net:3478?transport=udp>; rel="ice-server"; username="u,1"; '
                 + 'credential="p;a=ss"; credential-type="password", <https://example.net/x>; rel="next"')"""
        )
        assert parsed == [
            {"urls": "stun:stun.example.net:3478"},
            {"urls": "turn:turn.example.net:3478?transport=udp", "username": "u,1", "credential": "p;a=ss"},
        ]
    finally:
        server.stop()
        stun_server.close()


def test_pages_show_the_servers_refusal(server, open_page):  # type: ignore[no-untyped-def]
    """4xx answers are shown with the server's own message, and the page does not retry them."""
    conference = server.create_conference("Lỗi")
    point = open_page(f"{server.url}/point.html")  # no join link: the form asks for the values
    assert point.is_visible("#join-form")
    point.fill("#conference", conference)
    point.fill("#token", "not-a-token")
    point.click("#join-form button[type=submit]")
    point.wait_until("document.getElementById('status').dataset.state === 'error'", 10, "error state")
    assert "invalid or revoked token" in point.text_content("#error")
    assert "401" in point.text_content("#error")
    assert point.evaluate("window.diemcau.supervisor.running") is False
    assert point.evaluate("location.hash").startswith(f"#conference={conference}&token=")

    # A viewer token cannot publish: the speaker page says why. (A point's token may, while its point
    # holds the floor: tests/test_floor_api.py.)
    speaker = open_page(page_url(server, "speaker.html", conference, server.token(conference, "viewer")))
    speaker.wait_until("!document.getElementById('golive').disabled", 15, "Go live enabled")
    speaker.click("#golive")
    speaker.wait_until("document.getElementById('status').dataset.state === 'error'", 10, "error state")
    assert "role 'viewer' may not do this" in speaker.text_content("#error")
    assert speaker.is_enabled("#golive")


def test_point_joining_mid_gop_starts_from_the_current_gop(start_server, open_page):  # type: ignore[no-untyped-def]
    """Fast start with a real Chromium subscriber: the GOP since the last keyframe arrives as a paced
    burst with past timestamps, then live; Chromium decodes it and keeps decoding, no keyframe asked."""
    srv = start_server(workers=1, fast_start_seconds=3)
    try:
        conference = srv.create_conference("Fast start")
        speaker, _source = go_live(open_page, srv, conference)
        first = watch(open_page, srv, conference, "Điểm 1")
        wait_frames(first, 5, 20)
        second = watch(open_page, srv, conference, "Điểm 2")  # joins within 3 s of that keyframe
        stats = wait_frames(second, 15, 20)
        later = wait_frames(second, stats["framesDecoded"] + 30, 10, session=stats["session"])
        with srv.admin() as admin:
            media = admin.get("/api/v1/media/stats").json()
        points = {c["name"]: c for c in media["consumers"].values() if c["conference"] == conference}
        assert points["Điểm 2"]["join"]["fast_start"] is True, points
        assert points["Điểm 2"]["video"]["keyframe_requests"] == 0  # neither the join nor Chromium asked
        assert later["framesDecoded"] > stats["framesDecoded"] and later["frameWidth"] > 0
    finally:
        srv.stop()


def test_viewer_page_asks_for_a_token_and_waits_for_the_broadcast(server, open_page):  # type: ignore[no-untyped-def]
    """The HLS viewer: the join form, the wait (with backoff) before anything is live, a refused link."""
    conference = server.create_conference("Chưa phát")
    viewer = open_page(f"{server.url}/viewer.html")  # no join link: the form asks for the values
    assert viewer.is_visible("#join-form")
    assert viewer.evaluate("document.getElementById('status').dataset.state") == "idle"
    assert "Cần mã xem" in viewer.text_content("#status")
    viewer.fill("#join-form input[name=conference]", conference)
    viewer.fill("#join-form input[name=token]", server.token(conference, "viewer"))
    viewer.click("#join-form button[type=submit]")
    viewer.wait_until("document.getElementById('status').dataset.state === 'waiting' && window.viewer.retries > 0",
                      20, "waiting for the broadcast")
    assert "Chưa phát · Not live yet" in viewer.text_content("#status")
    assert not viewer.is_visible("#join-form")
    assert viewer.evaluate("location.hash").startswith(f"#conference={conference}&token=")
    assert viewer.text_content("#conference-label") == conference

    refused = open_page(page_url(server, "viewer.html", conference, "not-a-token"))
    refused.wait_until("document.getElementById('status').dataset.state === 'error'", 20, "error state")
    assert "Mã không hợp lệ" in refused.text_content("#status")


def test_replay_page_lists_recordings_and_says_when_one_is_missing(server, open_page):  # type: ignore[no-untyped-def]
    """The replay page: the token form, the (empty) list of the conference's recordings, a missing one."""
    conference = server.create_conference("Xem lại")
    member = server.token(conference, "member", "Đảng viên")
    replay = open_page(f"{server.url}/replay.html#conference={conference}")
    assert replay.is_visible("#join-form")
    replay.fill("#join-form input[name=token]", member)
    replay.click("#join-form button[type=submit]")
    replay.wait_until("!document.getElementById('picker').hidden", 10, "the list of recordings")
    assert replay.evaluate("document.querySelectorAll('#recordings li').length") == 0
    assert replay.evaluate("location.hash") == f"#conference={conference}"  # the token stays out of the URL

    missing = open_page(f"{server.url}/replay.html#recording=no-such-recording&token={member}")
    missing.wait_until("document.getElementById('status').dataset.state === 'error'", 10, "error state")
    assert "Không có bản ghi · Recording not found" in missing.text_content("#status")
