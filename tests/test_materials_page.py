"""The viewer page lists the study materials for a member who opens its link before the conference,
and saves a file with the member's token (never put in the file's URL)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from bench.server_process import ServerProcess

pytestmark = pytest.mark.browser


def test_a_member_finds_and_downloads_the_materials_before_the_conference(
    server: ServerProcess, open_page, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    cid = server.create_conference("Học tập nghị quyết: tài liệu")
    content = "Nghị quyết số 57: tóm tắt để học tập.\n".encode() * 200
    with server.admin() as c:
        r = c.post(f"/api/v1/conferences/{cid}/materials",
                   files={"file": ("tom-tat-nghi-quyet.txt", content, "text/plain")},
                   data={"title": "Tóm tắt nghị quyết"})
        assert r.status_code == 201, r.text
        member = c.post(f"/api/v1/conferences/{cid}/members", json={"name": "Trần Thị Bình"}).json()["id"]
        token = c.post(f"/api/v1/conferences/{cid}/members/{member}/token").json()["token"]
    page = open_page(f"{server.url}/viewer.html#conference={cid}&token={token}")
    page.wait_until("document.querySelectorAll('#materials li').length === 1", 15, "the materials listed")
    assert "Tóm tắt nghị quyết" in page.text_content("#materials")
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    with page.expect_download(timeout=15000) as info:
        page.click("#materials button.download")
    saved = tmp_path / "saved.txt"
    info.value.save_as(saved)
    assert info.value.suggested_filename == "tom-tat-nghi-quyet.txt"
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == hashlib.sha256(content).hexdigest()
    materials = [url for url in requested if "/materials" in url]
    assert materials and not any(token in url for url in materials), "the token never goes in a file's URL"
    # Without a token (a signed link, or none) the page shows no materials card.
    assert httpx.get(f"{server.url}/api/v1/conferences/{cid}/materials", timeout=10).status_code == 401
