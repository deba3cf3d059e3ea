"""The production front: Debian's nginx with config/nginx/diemcau.conf as shipped (only names, ports
and paths replaced), a self-signed certificate made here, the server behind it on plain HTTP.

Chromium opens the speaker page over https:// at a public name (``hoinghi.test``, mapped to
127.0.0.1), publishes its fake camera, and a point page plays, both through the proxy; the speaker
page's WebSocket shows the watching point; Location headers, join links and signed links carry the
public scheme and host. HLS: one viewer's segment is served to the next from nginx's cache, whatever
their links, but only once the server has said yes to each request: a revoked token, a missing or
forged credential, a path resolved through ``..`` get nothing from the cache, and replay served from it
still counts for each member.
"""

from __future__ import annotations

import http.client
import http.server
import re
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest

from bench.nginx_front import NGINX, PUBLIC_NAME, SHIPPED, NginxFront, self_signed
from bench.server_process import ROOT, ServerProcess
from server.settings import Settings
from tests.support.browser import CHROMIUM_ARGS, Page, wait_for_chromium
from tests.support.server import ServerFactory
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SPEAKER_STATS = """async () => {
  const pc = window.pc;
  if (!pc || pc.connectionState !== "connected") return null;
  let frames = 0;
  (await pc.getStats()).forEach((s) => { if (s.type === "outbound-rtp" && s.kind === "video") frames = s.framesEncoded; });
  return frames > 0;
}"""
POINT_FRAMES = """async () => {
  const pc = window.diemcau.session && window.diemcau.session.pc;
  if (!pc) return 0;
  let frames = 0;
  (await pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video") frames = s.framesDecoded; });
  return frames;
}"""


@pytest.fixture(scope="module")
def backend(start_server: ServerFactory) -> Iterator[ServerProcess]:
    """The server behind the proxy, with the default forwarded_allow_ips (127.0.0.1: nginx)."""
    with start_server("behind-nginx", workers=1) as server:
        yield server


@pytest.fixture(scope="module")
def front(backend: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxFront]:
    if not Path(NGINX).exists():
        pytest.fail("nginx is missing: `apt-get install -y nginx` (make test installs TEST_APT_PACKAGES)")
    with NginxFront(tmp_path_factory.mktemp("nginx"), backend.port) as nginx:
        yield nginx


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Chromium resolving the public name to this machine, as DNS would in the field."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=wait_for_chromium(), headless=True, timeout=60_000,
                                      args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {PUBLIC_NAME} 127.0.0.1"])
        yield chromium
        chromium.close()


def _created(response, path: str) -> bool:  # type: ignore[no-untyped-def]
    """A page's WHIP/WHEP POST answered 201 (its Location is the session)."""
    return response.request.method == "POST" and path in response.url and response.status == 201


@pytest.fixture(scope="module")
def live(front: NginxFront, backend: ServerProcess, browser) -> Iterator[tuple[str, Page, list[str]]]:  # type: ignore[no-untyped-def]
    """A conference whose speaker page went live over https:// through nginx; the WHIP Location seen."""
    conference = backend.create_conference()
    with front.client(Authorization=f"Bearer {backend.admin_token}") as c:
        link = c.post(f"/api/v1/conferences/{conference}/tokens", json={"role": "speaker"}).json()["links"]["page"]
    context = browser.new_context(ignore_https_errors=True)  # the self-signed certificate
    locations: list[str] = []
    speaker = Page(context.new_page())
    speaker.on("response", lambda r: locations.append(r.headers["location"]) if _created(r, "/whip/") else None)
    speaker.goto(link, wait_until="load")
    assert speaker.evaluate("window.isSecureContext && location.protocol") == "https:"
    speaker.wait_until("!document.getElementById('golive').disabled", 15, "camera preview, Go live enabled")
    speaker.click("#golive")
    speaker.wait_until(SPEAKER_STATS, 20, "speaker encoding and connected through the proxy")
    yield conference, speaker, locations
    context.close()


def test_pages_publish_and_play_through_nginx(front: NginxFront, backend: ServerProcess, live, browser) -> None:  # type: ignore[no-untyped-def]
    conference, speaker, whip_locations = live
    assert whip_locations[0].startswith(f"{front.url}/whip/{conference}/"), whip_locations
    with front.client(Authorization=f"Bearer {backend.admin_token}") as c:
        link = c.post(f"/api/v1/conferences/{conference}/tokens", json={"role": "point"}).json()["links"]["page"]
    assert link.startswith(f"{front.url}/point.html#conference={conference}&token=")
    context = browser.new_context(ignore_https_errors=True)
    try:
        point = Page(context.new_page())
        whep: list[str] = []
        point.on("response", lambda r: whep.append(r.headers["location"]) if _created(r, "/whep/") else None)
        point.goto(link, wait_until="load")
        frames = point.wait_until(f"(async () => {{ const n = await ({POINT_FRAMES})(); return n >= 30 && n; }})()",
                                  30, "30 frames decoded on the point page")
        assert frames >= 30
        assert whep[0].startswith(f"{front.url}/whep/{conference}/"), whep
        # the watcher count reaches the speaker page over its WebSocket, through the proxy
        speaker.wait_until("document.getElementById('watchers').dataset.count === '1'", 15, "one watcher")
    finally:
        context.close()
    # nginx logs a WebSocket when it closes: the point page's, closed with its context, went through it
    wait_until(lambda: re.search(rf'"GET /ws/conferences/{conference}" 101 ', front.access_log()), 10,
               "the point page's WebSocket (101) in nginx's log")
    assert "token=" not in front.access_log()  # the log format leaves queries out


def test_links_use_the_public_scheme_and_host(front: NginxFront, backend: ServerProcess) -> None:
    server = backend
    conference = server.create_conference()
    with front.client(Authorization=f"Bearer {server.admin_token}") as c:
        organiser = c.post(f"/api/v1/conferences/{conference}/tokens", json={"role": "organiser"}).json()
        assert organiser["links"]["page"].startswith(f"{front.url}/dashboard.html#")
        c.headers["Authorization"] = f"Bearer {organiser['token']}"
        hls_link = c.post(f"/api/v1/conferences/{conference}/hls-link", json={"hours": 1}).json()
        assert hls_link["playlist_url"].startswith(f"{front.url}/hls/{conference}/index.m3u8?")
        assert hls_link["viewer_url"].startswith(f"{front.url}/viewer.html#conference={conference}&")
        c.post(f"/api/v1/conferences/{conference}/points", json={"name": "Xã Tam Hồng", "level": "commune"})
        [point] = c.post(f"/api/v1/conferences/{conference}/points/tokens").json()
        assert point["link"].startswith(f"{front.url}/point.html#")
    # Straight to the server, without the proxy's headers: its own address and scheme.
    with server.admin() as c:
        page = c.post(f"/api/v1/conferences/{conference}/tokens", json={"role": "viewer"}).json()["links"]["page"]
    assert page.startswith(f"{server.url}/viewer.html#")


def _viewer(front: NginxFront, backend: ServerProcess, conference: str) -> tuple[str, str]:
    """A new viewer token of the conference: its id and its secret."""
    with front.client(Authorization=f"Bearer {backend.admin_token}") as c:
        r = c.post(f"/api/v1/conferences/{conference}/tokens", json={"role": "viewer", "name": "Xem tại nhà"})
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["token"]


def _segments(playlist: str) -> list[tuple[str, float]]:
    """A media playlist's segment URIs as written (signature included) and their durations."""
    out, duration = [], None
    for line in playlist.splitlines():
        if line.startswith("#EXTINF:"):
            duration = float(line[8:].split(",", 1)[0])
        elif line and not line.startswith("#") and duration is not None:
            out.append((line, duration))
            duration = None
    return out


def _live_segments(c: httpx.Client, conference: str, token: str) -> tuple[dict[str, str], httpx.Response]:
    """The live playlist through the proxy on ``token``: its segments' URLs by file name (signed as a
    player would fetch them), and the playlist's response."""
    playlist = wait_until(lambda: c.get(f"/hls/{conference}/index.m3u8", params={"token": token}), 30,
                          "live playlist", check=lambda r: r.status_code == 200 and ".m4s" in r.text)
    urls = {uri.split("?", 1)[0].rsplit("/", 1)[-1]: f"/hls/{conference}/{uri}" for uri, _ in _segments(playlist.text)}
    return urls, playlist


def _one_segment(c: httpx.Client, conference: str, *tokens: str) -> list[str]:
    """The URLs of the newest live segment in the playlists of all ``tokens``, one per token."""
    playlists = [_live_segments(c, conference, token)[0] for token in tokens]
    name = max(set.intersection(*(set(p) for p in playlists)))
    return [p[name] for p in playlists]


def _asked(backend: ServerProcess) -> int:
    """How many times nginx has asked the server whether to answer an HLS request (its access log)."""
    return backend.log_path.read_text(errors="replace").count('"GET /hls-auth HTTP/1.1"')


def test_hls_segments_come_from_the_proxy_cache(front: NginxFront, backend: ServerProcess, live) -> None:  # type: ignore[no-untyped-def]
    """Two viewers, each on a token of their own, are handed the same URL of a segment (the live
    playlist's shared signature): the server sends the segment once and is asked about it once, and
    nginx serves the second viewer from its caches."""
    conference = live[0]
    (_, first_viewer), (_, second_viewer) = _viewer(front, backend, conference), _viewer(front, backend, conference)
    with front.client() as c:
        _, playlist = _live_segments(c, conference, first_viewer)
        assert playlist.headers["cache-control"] == f"public, max-age={int(Settings().hls_segment_seconds / 2)}"
        mine, theirs = wait_until(lambda: _one_segment(c, conference, first_viewer, second_viewer), 5,
                                  "the same URL for both viewers", check=lambda urls: urls[0] == urls[1])
        asked = _asked(backend)
        first, second = c.get(mine), c.get(theirs)
        assert first.status_code == second.status_code == 200 and first.content == second.content
        assert first.headers["cache-control"] == "private, max-age=60, immutable"
        assert (first.headers["x-cache-status"], second.headers["x-cache-status"]) == ("MISS", "HIT")
        time.sleep(0.5)  # the server's log written
        assert _asked(backend) - asked == 1, "the server was asked about the segment more than once"
        # With the credential in a header, a playlist is private: never stored, never served from the cache.
        private = c.get(f"/hls/{conference}/index.m3u8", headers={"Authorization": f"Bearer {first_viewer}"})
        assert private.headers["cache-control"].startswith("private")
        assert private.headers["x-cache-status"] == "BYPASS"
        # A segment is the same for everyone: once the server has said yes, it comes from the cache.
        header = c.get(mine.split("?")[0], headers={"Authorization": f"Bearer {second_viewer}"})
        assert header.status_code == 200 and header.headers["x-cache-status"] == "HIT"
        assert header.content == first.content
    assert "cache=HIT" in front.access_log()


def test_a_revoked_token_gets_nothing_from_the_cache(front: NginxFront, backend: ServerProcess, live) -> None:  # type: ignore[no-untyped-def]
    """A segment in nginx's cache, two viewers: once one viewer's token is revoked, its playlist and its
    token's own URL of the segment are refused (401) within token_check_seconds + 1 s (docs/security.md),
    while the other viewer is still served from the cache. The live playlist's shared segment URL it was
    handed works until that signature's expiry (hls_segment_link_seconds; tests/test_hls_links.py)."""
    conference = live[0]
    (revoked_id, revoked), (_, other) = _viewer(front, backend, conference), _viewer(front, backend, conference)
    bound = Settings().token_check_seconds + 1.0
    with front.client() as c:
        [shared] = _one_segment(c, conference, other)
        own = f"{shared.split('?')[0]}?token={revoked}"
        assert c.get(own).status_code == 200 and c.get(shared).status_code == 200
        assert c.get(own).headers["x-cache-status"] == "HIT"  # the segment is in the cache
        with front.client(Authorization=f"Bearer {backend.admin_token}") as admin:
            r = admin.post(f"/api/v1/conferences/{conference}/tokens/{revoked_id}/revoke")
            assert r.status_code == 200, r.text
        revoked_at = time.monotonic()
        served_after: list[float] = []  # when each request still answered 200 was sent, after the revocation

        def fetch() -> httpx.Response:
            sent = time.monotonic() - revoked_at
            r = c.get(own)
            if r.status_code == 200:
                served_after.append(sent)
            return r

        refused = wait_until(fetch, 6, "the revoked viewer's segment URL refused", check=lambda r: r.status_code != 200)
        assert refused.status_code == 401 and "x-cache-status" not in refused.headers, refused.headers
        assert max(served_after, default=0.0) < bound + 0.3, served_after  # 0.3 s: nginx's clock, the requests
        assert c.get(own).status_code == 401  # and stays refused
        assert c.get(f"/hls/{conference}/index.m3u8", params={"token": revoked}).status_code == 401
        still = c.get(shared)
        assert still.status_code == 200 and still.headers["x-cache-status"] == "HIT"


def _raw_get(front: NginxFront, target: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``target`` byte for byte through the proxy (httpx would resolve ``..`` before sending)."""
    connection = http.client.HTTPSConnection("127.0.0.1", front.port, context=ssl._create_unverified_context(),
                                             timeout=20)
    try:
        connection.request("GET", target, headers={"Host": f"{PUBLIC_NAME}:{front.port}"})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_no_valid_credential_gets_nothing_from_the_cache(front: NginxFront, backend: ServerProcess, live) -> None:  # type: ignore[no-untyped-def]
    """A segment in the cache is refused without a credential, with a forged or stretched signature, with
    an unknown token (401), with another conference's token (403), and on a path nginx would resolve
    onto it through ``..`` from a conference that token does open: never served from the cache."""
    conference = live[0]
    _, viewer = _viewer(front, backend, conference)
    elsewhere = backend.create_conference()
    stranger = backend.token(elsewhere, "viewer")
    with front.client() as c:
        [url] = _one_segment(c, conference, viewer)
        cached = c.get(url)
        assert cached.status_code == 200 and c.get(url).headers["x-cache-status"] == "HIT"
        path, query = url.split("?", 1)
        exp, sig = dict(parse_qsl(query))["exp"], dict(parse_qsl(query))["sig"]
        refusals = {
            path: 401,
            f"{path}?exp={exp}&sig={'0' * len(sig)}": 401,  # forged
            f"{path}?exp={int(exp) + 600}&sig={sig}": 401,  # a later expiry under the same signature
            f"{path}?token=not-a-token": 401,
            f"{path}?token={stranger}": 403,
        }
        for bad, status in refusals.items():
            r = c.get(bad)
            assert r.status_code == status and "x-cache-status" not in r.headers, (bad, r.status_code, r.headers)
            assert r.content != cached.content
    recording, name = path.split("/")[-2:]
    for sneaky in (f"/hls/{elsewhere}/{recording}/../../{conference}/{recording}/{name}?token={stranger}",
                   f"/hls/{elsewhere}/%2e%2e/{conference}/{recording}/{name}?token={stranger}"):
        status, headers, body = _raw_get(front, sneaky)
        assert status == 403 and "x-cache-status" not in headers and body != cached.content, (sneaky, status)
    # nginx resolved both onto the cached file (its log shows the resolved URI), and refused them
    wait_until(lambda: front.access_log().count(f'"GET {path}" 403 '), 5, "the refusals in nginx's log",
               check=lambda n: n == 3)


def test_replay_through_the_cache_counts_for_each_member(front: NginxFront, backend: ServerProcess, live) -> None:  # type: ignore[no-untyped-def]
    """Two members replay the same recording segment through the proxy, the second from nginx's cache:
    the server counts it for both (replay make-up), since it is asked about both requests."""
    conference = live[0]
    with front.client(Authorization=f"Bearer {backend.admin_token}") as admin:
        members = []
        for name in ("Thành viên Một", "Thành viên Hai"):
            member = admin.post(f"/api/v1/conferences/{conference}/members", json={"name": name}).json()
            link = admin.post(f"/api/v1/conferences/{conference}/members/{member['id']}/token")
            assert link.status_code == 201, link.text
            members.append(link.json()["token"])
    with front.client() as c:
        urls = []
        for token in members:
            detail = c.get(f"/api/v1/conferences/{conference}/recording", headers={"Authorization": f"Bearer {token}"})
            assert detail.status_code == 200, detail.text
            playlist = c.get(detail.json()["playlist_url"])
            assert playlist.status_code == 200, playlist.text
            uri, duration = _segments(playlist.text)[0]
            urls.append(f"/hls/{conference}/{detail.json()['id']}/{uri}")
        assert urls[0] != urls[1] and urls[0].split("?")[0] == urls[1].split("?")[0]
        first, second = c.get(urls[0]), c.get(urls[1])
        assert first.status_code == second.status_code == 200 and first.content == second.content
        assert second.headers["x-cache-status"] == "HIT"
        for token in members:
            me = c.get(f"/api/v1/conferences/{conference}/attendance/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200, me.text
            assert me.json()["replay_seconds_served"] == pytest.approx(duration, abs=0.1), me.json()


def test_uploads_larger_than_nginx_default_pass_the_proxy(front: NginxFront, backend: ServerProcess) -> None:
    """A 3 MB material (nginx alone refuses over 1 MB) reaches the server; the limit is the server's."""
    conference = backend.create_conference()
    pdf = b"%PDF-1.7\n" + b"0" * 3_000_000 + b"\n%%EOF\n"
    with front.client(Authorization=f"Bearer {backend.admin_token}") as c:
        r = c.post(f"/api/v1/conferences/{conference}/materials", files={"file": ("nghi-quyet.pdf", pdf, "application/pdf")})
    assert r.status_code == 201, r.text


def test_upload_limit_matches_the_server() -> None:
    size = re.search(r"client_max_body_size (\d+)m;", SHIPPED.read_text())
    assert size and int(size.group(1)) * 1024 * 1024 == Settings.model_fields["max_upload_bytes"].default
    caddy = re.search(r"max_size (\d+)MiB", (ROOT / "config" / "Caddyfile").read_text())
    assert caddy and int(caddy.group(1)) * 1024 * 1024 == Settings.model_fields["max_upload_bytes"].default


def test_server_serves_https_itself(start_server: ServerFactory, tmp_path: Path) -> None:
    """Without a proxy: tls_cert_file and tls_key_file, and the links it hands out say https://, whatever
    X-Forwarded-Proto a client not in forwarded_allow_ips sends."""
    cert, key = self_signed(tmp_path)
    with start_server("tls", workers=1, tls_cert_file=str(cert), tls_key_file=str(key),
                      forwarded_allow_ips="192.0.2.1") as server:
        assert server.url.startswith("https://")
        with httpx.Client(base_url=server.url, verify=ssl.create_default_context(cafile=cert), timeout=10) as c:
            assert c.get("/healthz").status_code == 200
        conference = server.create_conference()
        with server.admin() as c:
            link = c.post(f"/api/v1/conferences/{conference}/tokens", json={"role": "point"},
                          headers={"X-Forwarded-Proto": "http"}).json()["links"]["page"]
        assert link.startswith(f"{server.url}/point.html#")
        with pytest.raises(httpx.HTTPError):  # no plain HTTP on that port
            httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5).raise_for_status()


def test_tls_settings_go_together(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with pytest.raises(ValueError, match="go together"):
        Settings(tls_cert_file=cert)
    with pytest.raises(ValueError, match="does not exist"):
        Settings(tls_cert_file=cert, tls_key_file=tmp_path / "missing.pem")
    assert Settings(tls_cert_file=cert, tls_key_file=key, host="0.0.0.0", port=8443).base_url == "https://0.0.0.0:8443"


@pytest.mark.skipif(shutil.which("caddy") is None, reason="caddy is not installed (apt-get install caddy)")
def test_caddyfile_example_is_valid(tmp_path: Path) -> None:
    done = subprocess.run(["caddy", "validate", "--config", str(ROOT / "config" / "Caddyfile"), "--adapter", "caddyfile"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and "Valid configuration" in done.stderr + done.stdout, done.stderr[-2000:]


class _Overloaded(http.server.BaseHTTPRequestHandler):
    """The server as it answers when its database pool stays empty (server.limits.database_busy):
    /healthz yes (nginx's start check), /hls-auth 503 with Retry-After."""

    def do_GET(self) -> None:  # noqa: N802
        busy = self.path.startswith("/hls-auth")
        self.send_response(503 if busy else 200)
        if busy:
            self.send_header("Retry-After", "2")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_hls_is_503_while_the_server_cannot_authorise(tmp_path: Path) -> None:
    """nginx turns an /hls-auth answer that is neither yes nor no into a 500 of its own; the shipped
    config answers 503 with Retry-After instead (players retry it), for playlists and segments."""
    backend = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Overloaded)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    try:
        with NginxFront(tmp_path, backend.server_address[1]) as front, front.client() as c:
            for path in ("/hls/c1/index.m3u8?token=t", "/hls/c1/r1/seg000001.m4s?exp=1&sig=s"):
                r = c.get(path)
                assert r.status_code == 503 and r.headers["retry-after"] == "2", (path, r.status_code, r.headers)
    finally:
        backend.shutdown()
