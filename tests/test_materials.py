"""Study materials: upload by organisers, download by participants, and every refusal explained."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.support.server import ServerFactory, ServerProcess

LIMIT = 4096
PDF = b"%PDF-1.7\n" + b"0" * 1000 + b"\n%%EOF\n"
DOCX = b"PK\x03\x04" + b"\x00" * 200


@pytest.fixture(scope="module")
def small_server(start_server: ServerFactory) -> Iterator[ServerProcess]:
    """A server whose upload limit is 4 KiB, so 'too big' needs no large files."""
    with start_server("materials", max_upload_bytes=LIMIT, workers=1) as srv:
        yield srv


@pytest.fixture
def conf(small_server: ServerProcess) -> tuple[str, httpx.Client, str]:
    cid = small_server.create_conference()
    organiser = small_server.token(cid, "organiser")
    viewer = small_server.token(cid, "member", "Đảng viên")
    with httpx.Client(base_url=small_server.url, headers={"Authorization": f"Bearer {organiser}"}, timeout=20) as c:
        yield cid, c, viewer


def stored_files(srv: ServerProcess, cid: str) -> list[Path]:
    folder = srv.data_dir / "materials" / cid
    return sorted(folder.iterdir()) if folder.exists() else []


def upload(c: httpx.Client, cid: str, name: str, data: bytes, ctype: str = "application/octet-stream", **form) -> httpx.Response:
    return c.post(f"/api/v1/conferences/{cid}/materials", files={"file": (name, data, ctype)}, data=form)


def test_upload_list_download(small_server: ServerProcess, conf: tuple[str, httpx.Client, str]) -> None:
    cid, c, viewer = conf
    r = upload(c, cid, "Nghị quyết số 12-NQ_TW.pdf", PDF, "application/pdf", title="Nghị quyết 12")
    assert r.status_code == 201, r.text
    pdf = r.json()
    assert (pdf["filename"], pdf["title"], pdf["size"]) == ("Nghị quyết số 12-NQ_TW.pdf", "Nghị quyết 12", len(PDF))
    assert pdf["sha256"] == hashlib.sha256(PDF).hexdigest()
    r = upload(c, cid, "Tài liệu hướng dẫn.docx", DOCX)
    assert r.status_code == 201, r.text
    assert r.json()["content_type"].endswith("wordprocessingml.document")

    # Any participant lists and downloads (with the header: ?token= is for media paths only).
    listed = httpx.get(f"{small_server.url}/api/v1/conferences/{cid}/materials",
                       headers={"Authorization": f"Bearer {viewer}"}).json()
    assert [m["filename"] for m in listed] == ["Nghị quyết số 12-NQ_TW.pdf", "Tài liệu hướng dẫn.docx"]
    r = httpx.get(f"{small_server.url}{listed[1]['download_url']}", headers={"Authorization": f"Bearer {viewer}"})
    assert r.status_code == 200 and r.content == DOCX
    disposition = r.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="Tai lieu huong dan.docx"')
    assert f"filename*=UTF-8''{quote('Tài liệu hướng dẫn.docx')}" in disposition
    assert r.headers["x-content-type-options"] == "nosniff"
    r = httpx.get(f"{small_server.url}{listed[0]['download_url']}", headers={"Authorization": f"Bearer {viewer}"})
    assert r.content == PDF and r.headers["content-type"] == "application/pdf"

    # Files are stored under random names only.
    assert all(len(p.name) == 32 for p in stored_files(small_server, cid))

    # Participants cannot upload or delete; other conferences' tokens cannot read.
    as_viewer = {"Authorization": f"Bearer {viewer}"}
    r = httpx.post(f"{small_server.url}/api/v1/conferences/{cid}/materials", headers=as_viewer,
                   files={"file": ("x.pdf", PDF, "application/pdf")})
    assert r.status_code == 403
    other = small_server.create_conference()
    stranger = small_server.token(other, "viewer")
    r = httpx.get(f"{small_server.url}{listed[0]['download_url']}", headers={"Authorization": f"Bearer {stranger}"})
    assert r.status_code == 403
    assert httpx.get(f"{small_server.url}{listed[0]['download_url']}").status_code == 401

    assert c.delete(listed[0]["download_url"]).status_code == 204
    assert c.get(listed[0]["download_url"]).status_code == 404
    assert len(stored_files(small_server, cid)) == 1


@pytest.mark.parametrize(
    "name,expected",
    [
        ("../../../../etc/passwd.pdf", "passwd.pdf"),
        ("..\\..\\Windows\\system.ini.txt", "system.ini.txt"),
        ("/abs/path/báo cáo.pdf", "báo cáo.pdf"),
        ("....hidden.pdf", "hidden.pdf"),
        ("a<b>c:d|e?.pdf", "a_b_c_d_e_.pdf"),
    ],
)
def test_path_traversal_in_names_is_neutralised(
    small_server: ServerProcess, conf: tuple[str, httpx.Client, str], name: str, expected: str
) -> None:
    cid, c, _ = conf
    data = PDF if expected.endswith(".pdf") else b"hello\n"
    r = upload(c, cid, name, data)
    assert r.status_code == 201, r.text
    assert r.json()["filename"] == expected
    files = stored_files(small_server, cid)
    assert len(files) == 1 and files[0].read_bytes() == data
    for sub in small_server.data_dir.rglob("*"):
        assert sub.name not in ("passwd.pdf", "system.ini.txt", "báo cáo.pdf", "hidden.pdf")
    assert not Path("/etc/passwd.pdf").exists()


def test_rejected_uploads_explain_why_and_leave_nothing(
    small_server: ServerProcess, conf: tuple[str, httpx.Client, str]
) -> None:
    cid, c, _ = conf
    cases = [
        (upload(c, cid, "big.pdf", b"%PDF-" + b"x" * (LIMIT + 100)), 413, "larger than the 4.0 KiB limit (4096 bytes)"),
        (upload(c, cid, "huge.pdf", b"%PDF-" + b"x" * (LIMIT * 40)), 413, "larger than the 4.0 KiB limit"),
        (upload(c, cid, "setup.exe", b"MZ\x90\x00"), 415, "file type '.exe' is not accepted"),
        (upload(c, cid, "page.html", b"<html>"), 415, "file type '.html' is not accepted"),
        (upload(c, cid, "README", b"text"), 415, "the file name has no extension"),
        (upload(c, cid, "fake.pdf", b"MZ\x90\x00 not a pdf"), 415, "not a valid .pdf file"),
        (upload(c, cid, "report.pdf", PDF, "text/html"), 415, "content type 'text/html' does not match a .pdf file"),
        (upload(c, cid, "notes.txt", b"\x00\x01\x02binary"), 415, "not plain text"),
        (upload(c, cid, "..", PDF), 400, "the file needs a name"),
        (upload(c, cid, "", PDF), 400, "the file needs a name"),
        (upload(c, cid, "empty.pdf", b""), 400, "the file is empty"),
        (c.post(f"/api/v1/conferences/{cid}/materials", files={"title": (None, "no file")}), 400, "field named 'file'"),
        (c.post(f"/api/v1/conferences/{cid}/materials", content=PDF, headers={"content-type": "application/pdf"}),
         415, "multipart/form-data"),
    ]
    for response, status, message in cases:
        assert response.status_code == status, (message, response.text)
        assert message in response.json()["detail"], response.text
    assert stored_files(small_server, cid) == []
    assert c.get(f"/api/v1/conferences/{cid}/materials").json() == []


def test_too_big_without_content_length_is_cut_off(
    small_server: ServerProcess, conf: tuple[str, httpx.Client, str]
) -> None:
    """A chunked upload (no Content-Length) is refused once it passes the limit."""
    cid, c, _ = conf
    boundary = uuid.uuid4().hex

    def body() -> Iterator[bytes]:
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.pdf\"\r\n"
               "Content-Type: application/pdf\r\n\r\n%PDF-").encode()
        for _ in range(40):
            yield b"x" * 4096
        yield f"\r\n--{boundary}--\r\n".encode()

    r = c.post(f"/api/v1/conferences/{cid}/materials", content=body(),
               headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    assert stored_files(small_server, cid) == []
