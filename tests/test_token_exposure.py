"""Where a token may travel: ``?token=`` only on media, HLS and WebSocket paths; never into the
server's log; the admin token and the link signing key are private files from the first byte."""

from __future__ import annotations

import asyncio
import json
import os
import stat

import httpx
import pytest
from websockets.asyncio.client import connect

from server.domain.signed_links import LinkSigner
from server.settings import Settings
from tests.support.server import ServerFactory, ServerProcess
from tests.support.waiting import wait_until_async


def test_query_token_only_where_headers_cannot_be_set(server: ServerProcess) -> None:
    conf = server.create_conference("Mã trong URL")
    organiser = server.token(conf, "organiser")
    viewer = server.token(conf, "viewer")
    base = f"{server.url}/api/v1/conferences/{conf}"
    # REST routes take the header only: a token in the URL is not a credential there.
    assert httpx.get(base, headers={"Authorization": f"Bearer {organiser}"}).status_code == 200
    r = httpx.get(base, params={"token": organiser})
    assert r.status_code == 401 and r.json()["detail"] == "missing bearer token"
    assert httpx.get(f"{base}/attendance/report.csv", params={"token": organiser}).status_code == 401
    assert httpx.get(f"{base}/materials", params={"token": viewer}).status_code == 401
    # Media paths still take it: the live playlist (404 or 200 once authorised: not 401) and WHEP.
    assert httpx.get(f"{server.url}/hls/{conf}/index.m3u8", params={"token": viewer}).status_code != 401
    assert httpx.get(f"{server.url}/hls/{conf}/index.m3u8").status_code == 401
    r = httpx.post(f"{server.url}/whep/{conf}", params={"token": viewer}, content="v=0\r\n",
                   headers={"Content-Type": "application/sdp"})
    assert r.status_code == 400  # authorised, then the offer itself is refused


async def test_tokens_are_not_logged(server: ServerProcess) -> None:
    conf = server.create_conference("Nhật ký")
    viewer = server.token(conf, "viewer")
    organiser = server.token(conf, "organiser")
    httpx.get(f"{server.url}/hls/{conf}/index.m3u8", params={"token": viewer})
    httpx.get(f"{server.url}/api/v1/conferences/{conf}", params={"token": organiser, "x": "1"})
    url = server.url.replace("http", "ws", 1) + f"/ws/conferences/{conf}?token={viewer}"
    async with connect(url) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "snapshot"
    marker = f"/hls/{conf}/index.m3u8?token=[redacted]"
    # the request is logged, without its token
    log = await wait_until_async(lambda: server.log_path.read_text(errors="replace"), 5, "the access log lines",
                                 check=lambda log: marker in log)
    assert f"/ws/conferences/{conf}?token=[redacted]" in log
    assert f"/api/v1/conferences/{conf}?token=[redacted]&x=1" in log
    assert viewer not in log and organiser not in log
    # the start-up banner goes to the same log (stdout is not a terminal): it names, not prints, the admin token
    assert "admin token" in log and server.admin_token not in log


def test_the_access_log_can_be_left_to_the_proxy(start_server: ServerFactory) -> None:
    """``access_log=false`` (behind nginx, which logs every request): the requests are served and not
    logged, the rest of the log (the banner) still is. The default logs them (the test above)."""
    with start_server("quiet", access_log=False) as quiet:
        conf = quiet.create_conference("Không ghi nhật ký truy cập")
        for _ in range(3):
            assert httpx.get(f"{quiet.url}/healthz").status_code == 200
        assert httpx.get(f"{quiet.url}/hls/{conf}/index.m3u8").status_code == 401
        log = quiet.log_path.read_text(errors="replace")
    assert "Điểm Cầu is starting" in log and "admin token" in log
    assert '"GET /healthz' not in log and f"/hls/{conf}/" not in log and "POST /api/v1/conferences" not in log


def _private(path) -> bool:  # type: ignore[no-untyped-def]
    return stat.S_IMODE(path.lstat().st_mode) == 0o600 and stat.S_ISREG(path.lstat().st_mode)


@pytest.fixture
def open_umask():  # type: ignore[no-untyped-def]
    old = os.umask(0)  # the most permissive: a file created with a default mode would be 0666
    yield
    os.umask(old)


def test_admin_token_file_is_private_and_no_planted_link_is_followed(tmp_path, monkeypatch, open_umask) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("DIEMCAU_ADMIN_TOKEN", raising=False)
    monkeypatch.setenv("DIEMCAU_CONFIG", "/nonexistent")
    elsewhere = tmp_path / "readable-by-others"
    data = tmp_path / "data"
    data.mkdir()
    (data / "admin_token").symlink_to(elsewhere)  # planted by another local user before first start
    token = Settings(data_dir=data).ensure_admin_token()
    assert not elsewhere.exists()  # the token was not written through the link
    assert _private(data / "admin_token") and (data / "admin_token").read_text().strip() == token


def test_signing_key_file_is_private_and_no_planted_link_is_followed(tmp_path, open_umask) -> None:  # type: ignore[no-untyped-def]
    elsewhere = tmp_path / "readable-by-others"
    (tmp_path / ".link_signing_key.tmp").symlink_to(elsewhere)
    LinkSigner.load(tmp_path)
    assert not elsewhere.exists()
    assert _private(tmp_path / "link_signing_key")
    key = (tmp_path / "link_signing_key").read_bytes()
    LinkSigner.load(tmp_path)
    assert (tmp_path / "link_signing_key").read_bytes() == key  # kept, not made anew
