"""Written questions against a real server process: who may ask, length and rate limits, the chair's
select/answer/reject/merge, the CSV export, the WebSocket per role, a restart, and the CLI export."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from bench.server_process import ROOT
from tests.support.http import http
from tests.support.server import ServerFactory, ServerProcess
from tests.support.waiting import wait_until_async

# What a participant must never learn about another's question or token.
PRIVATE = {"point_id", "member_id", "token_id", "subject_id", "origin", "author_kind", "status", "answer"}


@dataclass
class Conf:
    """A conference with a point, a member and a token for every role."""

    server: ServerProcess
    id: str
    point: str
    member: str
    tokens: dict[str, str]

    def url(self, tail: str = "") -> str:
        return f"/api/v1/conferences/{self.id}/questions{tail}"

    def client(self, role: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url, headers={"Authorization": f"Bearer {self.tokens[role]}"}, timeout=15
        )

    def request(self, role: str, method: str, tail: str = "", **kw: Any) -> httpx.Response:
        """One call as ``role`` on the questions routes."""
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        return http.request(method, f"{self.server.url}{self.url(tail)}", headers=headers, timeout=15, **kw)

    def ask(self, role: str, text: str) -> dict:
        r = self.request(role, "POST", json={"text": text})
        assert r.status_code == 201, r.text
        return r.json()

    def patch(self, role: str, qid: str, **body: object) -> httpx.Response:
        return self.request(role, "PATCH", f"/{qid}", json=body)

    def listed(self, role: str, **params: str) -> list[dict]:
        r = self.request(role, "GET", params=params)
        assert r.status_code == 200, r.text
        return r.json()


def make_conference(server: ServerProcess, title: str = "Hội nghị hỏi đáp") -> Conf:
    conf = server.create_conference(title)
    base = f"/api/v1/conferences/{conf}"
    with server.admin() as c:
        point = c.post(f"{base}/points", json={"name": "Huyện Đông Anh", "level": "district"}).json()["id"]
        member = c.post(f"{base}/members", json={"name": "Nguyễn Văn An", "unit": "Chi bộ 3"}).json()["id"]
        tokens = {
            "point": c.post(f"{base}/points/{point}/token").json()["token"],
            "member": c.post(f"{base}/members/{member}/token").json()["token"],
        }
    for role, name in (("viewer", "Khách xem"), ("organiser", "Ban tổ chức"), ("speaker", "Hội trường")):
        tokens[role] = server.token(conf, role, name)
    return Conf(server, conf, point, member, tokens)


@pytest.fixture
def conf(single_server: ServerProcess) -> Conf:
    """A conference of its own on the shared single-process server."""
    return make_conference(single_server)


# --- asking -------------------------------------------------------------------------------------


def test_points_members_and_viewers_ask_and_see_only_their_own(conf: Conf) -> None:
    p = conf.ask("point", "Xin hỏi về chỉ tiêu chuyển đổi số cấp huyện?")
    m = conf.ask("member", "Đảng viên ở nhà học tập bằng cách nào?")
    v = conf.ask("viewer", "Tài liệu có bản in không?")
    assert (p["author_kind"], p["author_name"], p["point_id"], p["member_id"]) == (
        "point", "Huyện Đông Anh", conf.point, None)
    assert (m["author_kind"], m["author_name"], m["member_id"], m["point_id"]) == (
        "member", "Nguyễn Văn An", conf.member, None)
    assert (v["author_kind"], v["author_name"]) == ("viewer", "Khách xem")
    for q in (p, m, v):
        assert q["status"] == "open" and q["answer"] is None and q["merged_into"] is None
        assert q["merged_count"] == 0 and q["votes"] == 1

    # The chair sees every question, newest activity first; the speaker chairs too.
    for chair in ("organiser", "speaker"):
        assert [q["id"] for q in conf.listed(chair)] == [v["id"], m["id"], p["id"]]
    # Everyone else: their own only, until one is selected, which all see without its author's ids.
    assert [q["id"] for q in conf.listed("point")] == [p["id"]]
    assert [q["id"] for q in conf.listed("member")] == [m["id"]]
    assert [q["id"] for q in conf.listed("viewer")] == [v["id"]]
    assert conf.patch("organiser", p["id"], status="selected").status_code == 200
    seen = {q["id"]: q for q in conf.listed("viewer")}
    assert set(seen) == {v["id"], p["id"]}
    assert seen[p["id"]]["point_id"] is None and seen[p["id"]]["author_name"] == "Huyện Đông Anh"
    assert conf.listed("point")[0]["point_id"] == conf.point  # its own question keeps its point


def test_empty_and_too_long_questions_are_refused(conf: Conf) -> None:
    with conf.client("member") as c:
        for body in ({"text": ""}, {"text": "   \n "}, {"text": "x" * 501}, {}, {"text": 5}):
            r = c.post(conf.url(), json=body)
            assert r.status_code == 422, (body, r.text)
            assert r.json()["detail"]
        assert c.post(conf.url(), json={"text": "ư" * 500}).status_code == 201
    assert len(conf.listed("organiser")) == 1


def test_the_eleventh_question_in_a_minute_is_refused_with_retry_after(conf: Conf) -> None:
    with conf.client("point") as c:
        for i in range(10):
            assert c.post(conf.url(), json={"text": f"Câu hỏi số {i + 1}"}).status_code == 201
        r = c.post(conf.url(), json={"text": "Câu hỏi số 11"})
    assert r.status_code == 429, r.text
    assert 1 <= int(r.headers["Retry-After"]) <= 60 and "10 questions" in r.json()["detail"]
    assert len(conf.listed("organiser")) == 10  # the refused one was not stored
    conf.ask("member", "Một người khác vẫn hỏi được")  # the limit is per token


def test_only_the_chair_changes_questions_and_only_organisers_export(conf: Conf) -> None:
    q = conf.ask("viewer", "Câu hỏi cần duyệt")
    other = make_conference(conf.server, "Hội nghị khác")
    theirs = other.ask("viewer", "Câu hỏi của hội nghị khác")
    for role in ("viewer", "member", "point"):
        with conf.client(role) as c:
            assert c.patch(conf.url(f"/{q['id']}"), json={"status": "rejected"}).status_code == 403
            assert c.post(conf.url(f"/{q['id']}/merge"), json={"into": q["id"]}).status_code == 403
            assert c.get(conf.url("/export.csv")).status_code == 403
    with conf.client("speaker") as c:
        assert c.get(conf.url("/export.csv")).status_code == 403  # the chair answers; organisers export
    with other.client("organiser") as c:  # another conference's organiser
        assert c.patch(conf.url(f"/{q['id']}"), json={"status": "rejected"}).status_code == 403
    assert conf.patch("speaker", q["id"], status="answered", answer="Đã trả lời").status_code == 200
    assert conf.patch("organiser", theirs["id"], status="rejected").status_code == 404  # not this conference's
    assert conf.patch("organiser", "no-such-question", status="rejected").status_code == 404
    assert conf.patch("organiser", q["id"], status="maybe").status_code == 422
    assert other.listed("organiser")[0]["status"] == "open"
    with httpx.Client(base_url=conf.server.url, timeout=15) as anonymous:
        assert anonymous.post(conf.url(), json={"text": "ai đó"}).status_code == 401


# --- the chair ----------------------------------------------------------------------------------


def test_select_answer_and_reject_with_at_most_one_selected(conf: Conf) -> None:
    a, b, c = (conf.ask(role, f"Câu {role}") for role in ("point", "member", "viewer"))
    assert conf.patch("organiser", a["id"], status="selected").json()["status"] == "selected"
    r = conf.patch("speaker", b["id"], status="selected")
    assert r.status_code == 200 and r.json()["status"] == "selected"
    statuses = {q["id"]: q["status"] for q in conf.listed("organiser")}
    assert statuses == {a["id"]: "open", b["id"]: "selected", c["id"]: "open"}
    assert [q["id"] for q in conf.listed("organiser", status="selected")] == [b["id"]]

    answered = conf.patch("organiser", b["id"], status="answered", answer="  Trả lời bằng văn bản  ").json()
    assert answered["status"] == "answered" and answered["answer"] == "Trả lời bằng văn bản"
    assert conf.listed("organiser", status="selected") == []
    rejected = conf.patch("organiser", c["id"], status="rejected").json()
    assert rejected["status"] == "rejected" and rejected["answer"] is None
    # The answer alone can change, and an empty one clears it.
    assert conf.patch("organiser", b["id"], answer="Bổ sung").json()["answer"] == "Bổ sung"
    assert conf.patch("organiser", b["id"], answer="").json()["answer"] is None
    assert conf.patch("organiser", b["id"], answer="x" * 2001).status_code == 422
    # Newest activity first: b (changed last), then c, then a.
    assert [q["id"] for q in conf.listed("organiser")] == [b["id"], c["id"], a["id"]]


def test_merging_duplicates(conf: Conf) -> None:
    a = conf.ask("point", "Khi nào có kinh phí?")
    b = conf.ask("member", "Kinh phí bao giờ cấp?")
    c = conf.ask("viewer", "Bao giờ có kinh phí ạ?")
    with conf.client("organiser") as org:
        r = org.post(conf.url(f"/{b['id']}/merge"), json={"into": a["id"]})
        assert r.status_code == 200, r.text
        assert (r.json()["id"], r.json()["merged_count"], r.json()["votes"]) == (a["id"], 1, 2)
        # Into a duplicate: counted towards the question that one was merged into.
        r = org.post(conf.url(f"/{c['id']}/merge"), json={"into": b["id"]})
        assert r.status_code == 200 and r.json()["id"] == a["id"] and r.json()["merged_count"] == 2
        assert org.post(conf.url(f"/{b['id']}/merge"), json={"into": a["id"]}).status_code == 409
        assert org.post(conf.url(f"/{a['id']}/merge"), json={"into": a["id"]}).status_code == 422
        assert org.post(conf.url(f"/{a['id']}/merge"), json={"into": c["id"]}).status_code == 422  # c is a's
        assert org.post(conf.url(f"/{a['id']}/merge"), json={"into": "nope"}).status_code == 404
    assert conf.patch("organiser", b["id"], status="selected").status_code == 409  # select a instead
    conf.patch("organiser", a["id"], status="answered", answer="Quý II")
    by_id = {q["id"]: q for q in conf.listed("organiser")}
    assert by_id[b["id"]]["merged_into"] == a["id"] and by_id[c["id"]]["merged_into"] == a["id"]
    for dup in (b, c):  # duplicates follow their question's status and answer
        assert (by_id[dup["id"]]["status"], by_id[dup["id"]]["answer"]) == ("answered", "Quý II")
    # A merged duplicate of the selected question is no longer the selected one.
    d, e = conf.ask("point", "Câu d"), conf.ask("member", "Câu e")
    conf.patch("organiser", d["id"], status="selected")
    with conf.client("organiser") as org:
        assert org.post(conf.url(f"/{d['id']}/merge"), json={"into": e["id"]}).status_code == 200
    assert conf.listed("organiser", status="selected") == []


# --- export -------------------------------------------------------------------------------------


def read_csv(data: bytes) -> list[dict[str, str]]:
    assert data.startswith("\ufeff".encode()), "a BOM, so Excel reads UTF-8"
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def test_csv_export_names_authors_and_neutralises_formulas(conf: Conf) -> None:
    p = conf.ask("point", "=HYPERLINK(\"http://x\",\"bấm\")")
    m = conf.ask("member", "Câu hỏi, có dấu phẩy và \"ngoặc kép\"\nvà xuống dòng")
    v = conf.ask("viewer", "@SUM(1)")
    conf.patch("organiser", m["id"], status="answered", answer="-Trả lời")
    with conf.client("organiser") as org:
        r = org.get(conf.url("/export.csv"))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        rows = read_csv(r.content)
        report = org.get(f"/api/v1/conferences/{conf.id}/attendance/report.csv", params={"table": "questions"})
        assert report.status_code == 200 and read_csv(report.content) == rows
        counts = org.get(f"/api/v1/conferences/{conf.id}/attendance/report").json()["questions"]
    assert [row["id"] for row in rows] == [p["id"], m["id"], v["id"]]  # in the order asked
    point, member, viewer = rows
    assert (point["author_kind"], point["author"], point["level"], point["unit"]) == (
        "point", "Huyện Đông Anh", "district", "")
    assert point["text"] == "'=HYPERLINK(\"http://x\",\"bấm\")"
    assert (member["author"], member["unit"], member["status"], member["answer"]) == (
        "Nguyễn Văn An", "Chi bộ 3", "answered", "'-Trả lời")
    assert member["text"] == "Câu hỏi, có dấu phẩy và \"ngoặc kép\"\nvà xuống dòng"
    assert (viewer["author"], viewer["text"]) == ("Khách xem", "'@SUM(1)")
    assert point["created_at"].endswith("+00:00") and point["merged_into"] == "" and point["merged_count"] == "0"
    assert counts == {"total": 3, "by_status": {"open": 2, "selected": 0, "answered": 1, "rejected": 0},
                      "merged": 0}


# --- the WebSocket ------------------------------------------------------------------------------


class Socket:
    """A conference WebSocket whose events are collected in the background."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict] = []
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                self.events.append(json.loads(message))
        except Exception:
            pass

    async def wait_for(self, predicate: Callable[[dict], bool], timeout: float = 10.0) -> dict:
        events = await wait_until_async(lambda: list(self.events), timeout, "such an event", interval=0.05,
                                        check=lambda events: any(predicate(e) for e in events))
        return next(e for e in events if predicate(e))

    def upto(self, predicate: Callable[[dict], bool]) -> list[dict]:
        """The events received before the first one ``predicate`` accepts, and that one."""
        index = next(i for i, e in enumerate(self.events) if predicate(e))
        return self.events[: index + 1]


async def open_socket(conf: Conf, role: str) -> Socket:
    url = conf.server.url.replace("http", "ws", 1) + f"/ws/conferences/{conf.id}?token={conf.tokens[role]}"
    sock = Socket(await connect(url))
    await sock.wait_for(lambda e: e["type"] == "snapshot")
    return sock


async def test_websocket_chair_sees_questions_participants_only_the_selected_one(conf: Conf) -> None:
    sockets = {role: await open_socket(conf, role) for role in ("organiser", "speaker", "point", "viewer")}
    try:
        assert all(s.events[0]["question"] is None for s in sockets.values())  # nothing selected yet
        q = await asyncio.to_thread(conf.ask, "member", "Câu hỏi trực tiếp")
        for chair in ("organiser", "speaker"):
            got = await sockets[chair].wait_for(lambda e: e["type"] == "question.submitted")
            assert got["v"] == 1 and got["id"] == q["id"] and got["text"] == "Câu hỏi trực tiếp"
            assert got["author_name"] == "Nguyễn Văn An" and got["member_id"] == conf.member
            assert got["status"] == "open" and got["author_kind"] == "member"
        r = await asyncio.to_thread(conf.patch, "speaker", q["id"], status="selected", answer="Sẽ trả lời")
        assert r.status_code == 200
        await sockets["organiser"].wait_for(lambda e: e["type"] == "question.updated" and e["status"] == "selected")

        def is_selected(e: dict) -> bool:
            return e["type"] == "question.selected" and e["id"] == q["id"]

        for role in ("point", "viewer"):
            await sockets[role].wait_for(is_selected)
            # Events reach a socket in the order published: everything published before the selection
            # has arrived by now, and none of it was a question or its update.
            received = sockets[role].upto(is_selected)[1:]
            assert [e["type"] for e in received if e["type"].startswith("question.")] == ["question.selected"]
            shown = received[-1]
            assert {k: shown[k] for k in ("v", "id", "text", "author_name")} == {
                "v": 1, "id": q["id"], "text": "Câu hỏi trực tiếp", "author_name": "Nguyễn Văn An"}
            assert not PRIVATE & set(shown), shown

        # A page that (re)connects finds the selected question in its snapshot.
        late = await open_socket(conf, "point")
        assert late.events[0]["question"] == {"id": q["id"], "text": "Câu hỏi trực tiếp",
                                              "author_name": "Nguyễn Văn An"}
        await late.ws.close()

        # Answered: nothing is selected any more, and every page hears so.
        await asyncio.to_thread(conf.patch, "organiser", q["id"], status="answered")
        cleared = await sockets["point"].wait_for(lambda e: e["type"] == "question.selected" and e["id"] is None)
        assert cleared["text"] is None
        assert not [e for e in sockets["point"].events if e["type"] in ("question.submitted", "question.updated")]
        assert not [e for e in sockets["viewer"].events if e["type"] in ("question.submitted", "question.updated")]
    finally:
        for sock in sockets.values():
            await sock.ws.close()


# --- durability and the CLI ---------------------------------------------------------------------


async def test_questions_survive_a_restart(start_server: ServerFactory) -> None:
    with start_server("questions-restart", workers=1) as srv:
        conf = make_conference(srv, "Hội nghị khởi động lại")
        a = conf.ask("point", "Câu hỏi trước khi khởi động lại")
        b = conf.ask("member", "Câu thứ hai")
        conf.patch("organiser", a["id"], status="selected")
        conf.patch("organiser", b["id"], status="rejected", answer="Ngoài phạm vi")
        before = conf.listed("organiser")
        await asyncio.to_thread(srv.stop)
        await asyncio.to_thread(srv.start)
        assert conf.listed("organiser") == before
        assert {q["id"]: (q["status"], q["answer"]) for q in before} == {
            a["id"]: ("selected", None), b["id"]: ("rejected", "Ngoài phạm vi")}
        sock = await open_socket(conf, "viewer")
        assert sock.events[0]["question"]["id"] == a["id"]
        await sock.ws.close()


def diemcau(srv: ServerProcess, token: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIEMCAU_")}
    env.update({"DIEMCAU_URL": srv.url, "DIEMCAU_TOKEN": token, "PYTHONIOENCODING": "utf-8"})
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_cli_lists_and_exports_questions(conf: Conf, tmp_path: Path) -> None:
    a = conf.ask("point", "Câu hỏi qua dòng lệnh")
    conf.ask("member", "=1+1")
    conf.patch("organiser", a["id"], status="answered", answer="Đã rõ")
    out = tmp_path / "cau-hoi.csv"
    r = diemcau(conf.server, conf.tokens["organiser"], "questions", "export", conf.id, "-o", str(out))
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [(row["author"], row["text"], row["status"], row["answer"]) for row in rows] == [
        ("Huyện Đông Anh", "Câu hỏi qua dòng lệnh", "answered", "Đã rõ"),
        ("Nguyễn Văn An", "'=1+1", "open", ""),
    ]
    r = diemcau(conf.server, conf.tokens["organiser"], "questions", "list", conf.id, "--status", "answered")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"{a['id']}  answered  Huyện Đông Anh: Câu hỏi qua dòng lệnh", "    -> Đã rõ"]
    r = diemcau(conf.server, conf.tokens["viewer"], "questions", "export", conf.id)
    assert r.returncode == 1 and "403" in r.stderr
