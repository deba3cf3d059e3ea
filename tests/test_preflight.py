"""``diemcau check <join link>``: run as a real process against a real server with a live hall (all
passes); its checks against a closed port, with a wrong token, over HTTPS through the shipped nginx
front, and relayed through a real coturn."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.nginx_front import NginxFront
from bench.server_process import ROOT, ServerProcess, free_port
from server.preflight import passed, render, run_checks
from server.preflight_web import parse_target
from server.preflight_media import check_media, ice_servers_from_links
from tests.support.background import BackgroundPublisher
from tests.support.turn_server import TurnServer

pytestmark = pytest.mark.slow  # real WHEP sessions

USER, PASSWORD = "diemcau", "preflight-secret"


def check(link: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIEMCAU_")}
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run([sys.executable, "-m", "server.cli", "check", link], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def join_link(server: ServerProcess, conference: str, token: str) -> str:
    return f"{server.url}/point.html#conference={conference}&token={token}"


@pytest.fixture(scope="module")
def live_hall(single_server: ServerProcess) -> Iterator[tuple[str, str]]:
    """A conference whose speaker is publishing, and a point's token."""
    conference = single_server.create_conference("Kiểm tra trước hội nghị")
    publisher = BackgroundPublisher(single_server.url, conference, single_server.token(conference, "speaker")).start()
    yield conference, single_server.token(conference, "point", "Xã Tam Hồng")
    publisher.stop()


def test_a_working_point_passes_every_check(single_server: ServerProcess, live_hall: tuple[str, str]) -> None:
    conference, token = live_hall
    r = check(join_link(single_server, *live_hall))
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "✔ Link: Đường link hợp lệ" in out and "Kiểm tra trước hội nghị" in out
    assert "✔ WebSocket" in out and "The hall is live." in out
    assert "Picture and sound arrive directly from udp 127.0.0.1:" in out  # the server's media port
    assert "! HTTP" in out and "Browsers allow the camera only over HTTPS" in out  # the test server is plain HTTP
    assert "- TURN" in out  # the shared server offers none
    assert "PASSED" in out
    with single_server.admin() as c:  # the check's viewing session was closed behind it
        consumers = c.get("/api/v1/media/stats").json()["consumers"].values()
    assert not [v for v in consumers if v["conference"] == conference]


async def test_a_closed_port_is_said_plainly() -> None:
    port = free_port()
    findings = await run_checks(parse_target(f"http://127.0.0.1:{port}/point.html#conference=abc&token=xyz"))
    out = render(findings)
    assert not passed(findings)
    assert f"Cannot reach the server at 127.0.0.1:{port}: connection refused" in out, out
    assert "bị từ chối" in out and "FAILED: HTTP" in out


async def test_a_wrong_token_is_said_plainly(single_server: ServerProcess, live_hall: tuple[str, str]) -> None:
    findings = await run_checks(parse_target(join_link(single_server, live_hall[0], "not-a-real-token")))
    out = render(findings)
    assert not passed(findings)
    assert "The point's token is wrong, expired or revoked: ask the organisers for a new link." in out, out
    assert "WHEP" not in out  # nothing further is tried on a refused link
    findings = await run_checks(parse_target(f"{single_server.url}/point.html"))
    assert not passed(findings) and "NOT ALL CHECKED" in render(findings)


async def test_https_through_the_nginx_front(single_server: ServerProcess, live_hall: tuple[str, str],
                                            tmp_path: Path) -> None:
    """config/nginx/diemcau.conf as shipped in front, with a certificate of its own: not trusted, the check
    says the certificate is refused; trusted (--ca-file), every check passes through the proxy."""
    with NginxFront(tmp_path / "nginx", single_server.port) as front:
        link = f"{front.local_url}/point.html#conference={live_hall[0]}&token={live_hall[1]}"
        refused = await run_checks(parse_target(link))
        assert not passed(refused) and "certificate is not accepted" in refused[0].en, render(refused)
        findings = await run_checks(parse_target(link, ca_file=front.home / "fullchain.pem"))
    out = render(findings)
    assert passed(findings), out
    assert "✔ HTTPS" in out and "✔ WebSocket" in out and "Picture and sound arrive directly" in out


async def test_a_relay_through_turn_is_tried(single_server: ServerProcess, live_hall: tuple[str, str],
                                             tmp_path: Path) -> None:
    """The point's WHEP session relayed by a real coturn, as when the server hands one out."""
    with TurnServer(tmp_path / "turn", "--lt-cred-mech", f"--user={USER}:{PASSWORD}") as turn:
        target = parse_target(join_link(single_server, *live_hall))
        target.live = True
        target.ice_servers = [{"urls": f"turn:127.0.0.1:{turn.port}", "username": USER, "credential": PASSWORD}]
        findings = await check_media(target)
    out = render(findings)
    assert [(f.name, f.status) for f in findings] == [("WHEP", "ok"), ("TURN", "ok")], out
    assert "Picture and sound arrive relayed through TURN" in out
    target.ice_servers = [{"urls": f"turn:127.0.0.1:{free_port()}", "username": USER, "credential": PASSWORD}]
    target.live = False  # the direct session need not wait for frames again
    findings = await check_media(target)  # nothing listens there: the relay is blocked
    assert findings[1].status == "fail" and "the TURN port is blocked too" in findings[1].en, render(findings)


def test_link_headers_are_read_as_the_browser_would() -> None:
    links = ['<stun:stun.example.org:3478>; rel="ice-server"',
             '<turn:turn.example.org:443?transport=tcp>; rel="ice-server"; username="1700:tok"; '
             'credential="c2VjcmV0"; credential-type="password"']
    assert ice_servers_from_links(links) == [
        {"urls": "stun:stun.example.org:3478", "username": None, "credential": None},
        {"urls": "turn:turn.example.org:443?transport=tcp", "username": "1700:tok", "credential": "c2VjcmV0"},
    ]


def test_a_join_link_gives_the_server_conference_and_token() -> None:
    target = parse_target("https://hoinghi.example.vn/point.html#conference=9f3c&token=Qm7x-_a")
    assert (target.base_url, target.conference, target.token) == ("https://hoinghi.example.vn", "9f3c", "Qm7x-_a")
    assert parse_target("hoinghi.example.vn:8443", "c1", "t1").base_url == "https://hoinghi.example.vn:8443"
    assert parse_target("https://h.vn/point.html#conference=a&token=b", token="c").token == "c"  # given wins
    with pytest.raises(ValueError, match="not an http:// or https:// address"):
        parse_target("ftp://hoinghi.example.vn/point.html")
