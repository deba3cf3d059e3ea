"""Study essays end to end on a seeded province (1 province, 4 districts, 15 communes; 10 members
each): members submit typed text and a real PDF, a point's operator submits for a delegate without a
device, some essays come late, late ones are refused once the assignment says so, graders grade
only inside their subtree, and the roll-up matches counts computed here from the plan. Proposals
group by field and district, exports parse as CSV, and the printable report renders in Chromium.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fpdf import FPDF

from tests.support.server import ServerFactory, ServerProcess
from tests.test_cli import diemcau

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out

DISTRICTS = {"Huyện An Phú": 4, "Huyện Bình Sơn": 4, "Huyện Cẩm Lý": 4, "Huyện Đông Hà": 3}
PER_POINT = 10
FIELDS = ("economy", "party_building", "society")
TEXT = "Đề xuất cách thực hiện nghị quyết tại chi bộ: tăng cường sinh hoạt chuyên đề hằng tháng."
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def pdf_essay(text: str) -> bytes:
    """A real PDF (fpdf2, with a Unicode font), so its Vietnamese text can be extracted again."""
    doc = FPDF()
    doc.add_page()
    doc.add_font("DejaVu", fname=FONT)
    doc.set_font("DejaVu", size=12)
    doc.multi_cell(0, 8, text)
    return bytes(doc.output())


@dataclass
class Province:
    server: ServerProcess
    conference: str
    points: dict[str, dict] = field(default_factory=dict)  # name -> point (id, level, district)
    members: list[dict] = field(default_factory=list)  # id, name, point, district, token
    point_tokens: dict[str, str] = field(default_factory=dict)  # point name -> operator token

    def api(self, path: str) -> str:
        return f"/api/v1/conferences/{self.conference}/{path}"

    def as_token(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def seed(server: ServerProcess) -> Province:
    """The province through the bulk import endpoints: 20 points, 200 members, their links."""
    conference = server.create_conference("Học tập Nghị quyết — bài thu hoạch")
    province = Province(server, conference)
    rows = ["name,level,parent", "Tỉnh Thử Nghiệm,province,"]
    for district, communes in DISTRICTS.items():
        rows.append(f"{district},district,Tỉnh Thử Nghiệm")
        rows += [f"Xã {district[6:]} {n},commune,{district}" for n in range(1, communes + 1)]
    with server.admin() as c:
        r = c.post(province.api("points/import"), content="\n".join(rows).encode(), headers={"Content-Type": "text/csv"})
        assert r.status_code == 200, r.text
        points = c.get(province.api("points")).json()
        points = points["points"] if isinstance(points, dict) else points
        by_id = {p["id"]: p for p in points}
        for p in points:
            parent = by_id.get(p.get("parent_id") or "")
            district = p["name"] if p["level"] == "district" else parent["name"] if parent and parent["level"] == "district" else ""
            province.points[p["name"]] = {"id": p["id"], "level": p["level"], "district": district}
        assert len(province.points) == 20
        member_rows = ["name,unit,point"]
        for name in province.points:
            member_rows += [f"Đảng viên {name} {n},Chi bộ {n % 3},{name}" for n in range(PER_POINT)]
        r = c.post(province.api("members/import"), content="\n".join(member_rows).encode(),
                   headers={"Content-Type": "text/csv"})
        assert r.status_code == 200, r.text
        links = {link["member_id"]: link["token"] for link in c.post(province.api("members/tokens"), json={}).json()}
        listed = c.get(province.api("members"), params={"limit": 1000}).json()["members"]
        names = {p["id"]: n for n, p in province.points.items()}
        for m in listed:
            point = names[m["point_id"]]
            province.members.append({"id": m["id"], "name": m["name"], "point": point,
                                     "district": province.points[point]["district"], "token": links[m["id"]]})
        for link in c.post(province.api("points/tokens"), json={}).json():
            province.point_tokens[link["name"]] = link["token"]
    assert len(province.members) == 200
    return province


@pytest.fixture(scope="module")
def world(start_server: ServerFactory) -> Iterator[Province]:
    with start_server("essays", workers=1, essay_max_upload_bytes=200_000) as server:
        yield seed(server)


def members_of(world: Province, point: str) -> list[dict]:
    return sorted((m for m in world.members if m["point"] == point), key=lambda m: m["name"])


def proposal_for(member: dict, n: int) -> list[dict]:
    return [{"title": f"Đề xuất số {n} về phát triển kinh tế" if FIELDS[n % 3] == "economy" else f"Đề xuất {n}",
             "field": FIELDS[n % 3], "detail": "Chi tiết"}]


@dataclass
class Plan:
    """What the test did, to compute the expected roll-up by hand."""

    submitted: dict[str, bool] = field(default_factory=dict)  # member id -> late
    grades: dict[str, str] = field(default_factory=dict)  # member id -> current grade
    attended: set[str] = field(default_factory=set)
    proposals: Counter = field(default_factory=Counter)  # (field, district)


PLAN = Plan()


def test_assignment_and_submissions(world: Province, tmp_path: Path) -> None:
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    with world.server.admin() as c:
        r = c.put(world.api("essays/assignment"), json={
            "prompt": "Đề xuất cách thực hiện nghị quyết ở địa phương", "deadline": deadline.isoformat(),
            "min_words": 5})
        assert r.status_code == 200, r.text
        assert r.json()["scale"] == ["xuất sắc", "tốt", "khá", "đạt", "chưa đạt"]
    n = 0
    for i, point in enumerate(world.points):
        for member in members_of(world, point)[: i % 4]:
            with world.as_token(member["token"]) as c:
                r = c.put(world.api(f"essays/members/{member['id']}"),
                          json={"text": f"{TEXT} ({member['name']})", "proposals": proposal_for(member, n)})
                assert r.status_code == 200, r.text
                assert r.json()["submitted_by"] == "member" and not r.json()["late"]
            PLAN.submitted[member["id"]] = False
            PLAN.proposals[(FIELDS[n % 3], member["district"] or "(không thuộc huyện)")] += 1
            n += 1
    # A real PDF from one member of each district point; its text is extracted for search.
    for district in DISTRICTS:
        member = members_of(world, district)[8]
        with world.as_token(member["token"]) as c:
            r = c.post(world.api(f"essays/members/{member['id']}/file"),
                       files={"file": ("bai-thu-hoach.pdf", pdf_essay(f"Bài thu hoạch của {member['name']}: {TEXT}"),
                                       "application/pdf")})
            assert r.status_code == 200, r.text
            assert "sinh hoạt chuyên đề" in r.json()["text"] and r.json()["filename"] == "bai-thu-hoach.pdf"
            assert c.get(r.json()["file_url"]).content.startswith(b"%PDF-")
        PLAN.submitted[member["id"]] = False
    # The operator of a commune submits for a delegate without a smartphone.
    commune = next(p for p, v in world.points.items() if v["level"] == "commune")
    delegate = members_of(world, commune)[9]
    with world.as_token(world.point_tokens[commune]) as c:
        r = c.put(world.api(f"essays/members/{delegate['id']}"), json={"text": f"{TEXT} (nhờ điểm cầu gửi)"})
        assert r.status_code == 200, r.text
        assert r.json()["submitted_by"] == "point"
        other = members_of(world, next(p for p in world.points if p != commune))[0]
        assert c.put(world.api(f"essays/members/{other['id']}"), json={"text": TEXT}).status_code == 403
    PLAN.submitted[delegate["id"]] = False
    # Too short for the assignment's five words: refused, nothing stored.
    first = members_of(world, commune)[7]
    with world.as_token(first["token"]) as c:
        r = c.put(world.api(f"essays/members/{first['id']}"), json={"text": "Quá ngắn"})
        assert r.status_code == 422 and "at least 5" in r.json()["detail"]
        assert c.get(world.api(f"essays/members/{first['id']}")).json()["submitted"] is False
        # A member cannot write someone else's essay.
        assert c.put(world.api(f"essays/members/{delegate['id']}"), json={"text": TEXT}).status_code == 403


def test_bad_uploads_are_refused_and_nothing_is_stored(world: Province) -> None:
    member = members_of(world, "Tỉnh Thử Nghiệm")[9]
    essays_dir = world.server.data_dir / "essays" / world.conference
    before = sorted(essays_dir.iterdir())
    cases = [
        ("bai.pdf", b"%PDF-1.4\n" + b"x" * 300_000, "application/pdf", 413),
        ("bai.exe", b"MZ\x90\x00", "application/octet-stream", 415),
        ("bai.txt", TEXT.encode(), "text/plain", 415),
        ("bai.pdf", b"\x89PNG\r\n\x1a\n" + b"0" * 100, "application/pdf", 415),
        ("bai.docx", b"%PDF-1.4\n", "application/pdf", 415),
    ]
    with world.as_token(member["token"]) as c:
        for name, data, kind, status in cases:
            r = c.post(world.api(f"essays/members/{member['id']}/file"), files={"file": (name, data, kind)})
            assert r.status_code == status, (name, r.status_code, r.text)
        assert c.get(world.api(f"essays/members/{member['id']}")).json()["submitted"] is False
    assert sorted(essays_dir.iterdir()) == before


def office_file(kind: str, text: str) -> bytes:
    """A minimal DOCX or ODT (a zip with the document's XML), as word processors write them."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        if kind == "docx":
            archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>')
            archive.writestr("word/document.xml", '<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w='
                             '"http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
                             f'<w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>')
        else:
            archive.writestr("mimetype", "application/vnd.oasis.opendocument.text")
            archive.writestr("content.xml", '<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office='
                             '"urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:text='
                             '"urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:text>'
                             f'<text:p>{text}</text:p></office:text></office:body></office:document-content>')
    return buffer.getvalue()


def test_docx_and_odt_text_is_extracted(world: Province) -> None:
    types = {"docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
             "odt": "application/vnd.oasis.opendocument.text"}
    for n, kind in enumerate(("docx", "odt"), start=2):
        member = members_of(world, "Tỉnh Thử Nghiệm")[n]
        with world.as_token(member["token"]) as c:
            r = c.post(world.api(f"essays/members/{member['id']}/file"),
                       files={"file": (f"bai.{kind}", office_file(kind, f"{TEXT} ({kind})"), types[kind])})
            assert r.status_code == 200, r.text
            assert r.json()["text"] == f"{TEXT} ({kind})" and r.json()["words"] > 10
        PLAN.submitted[member["id"]] = False


def test_revisions_then_late_then_refused(world: Province) -> None:
    member = members_of(world, "Tỉnh Thử Nghiệm")[0]  # submitted on time in the first test? no: i=0
    with world.as_token(member["token"]) as c:
        r = c.put(world.api(f"essays/members/{member['id']}"), json={"text": f"{TEXT} bản 1"})
        assert r.status_code == 200 and r.json()["revisions"] == 1
        r = c.put(world.api(f"essays/members/{member['id']}"), json={"text": f"{TEXT} bản 2"})
        assert r.json()["revisions"] == 2 and r.json()["text"].endswith("bản 2") and not r.json()["late"]
    PLAN.submitted[member["id"]] = False
    with world.server.admin() as c:
        past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
        assignment = {"prompt": "Đề xuất cách thực hiện nghị quyết ở địa phương", "deadline": past, "min_words": 5}
        assert c.put(world.api("essays/assignment"), json=assignment).status_code == 200
        late = [members_of(world, p)[7] for i, p in enumerate(world.points) if i % 4 == 1]
        for m in late:
            with world.as_token(m["token"]) as mc:
                r = mc.put(world.api(f"essays/members/{m['id']}"), json={"text": f"{TEXT} (muộn)"})
                assert r.status_code == 200 and r.json()["late"] is True, r.text
            PLAN.submitted[m["id"]] = True
        assert c.put(world.api("essays/assignment"), json={**assignment, "accept_late": False}).status_code == 200
    refused = members_of(world, "Tỉnh Thử Nghiệm")[6]
    with world.as_token(refused["token"]) as c:
        r = c.put(world.api(f"essays/members/{refused['id']}"), json={"text": TEXT})
        assert r.status_code == 409 and "deadline" in r.json()["detail"]
        assert c.get(world.api(f"essays/members/{refused['id']}")).json()["submitted"] is False


def test_graders_grade_only_inside_their_scope(world: Province) -> None:
    district = "Huyện An Phú"
    with world.server.admin() as c:
        r = c.post(world.api("essays/graders"), json={"name": "Tổ chấm An Phú", "point_id": world.points[district]["id"]})
        assert r.status_code == 201 and "grading.html" in r.json()["links"]["page"]
        grader = r.json()["token"]
        whole = c.post(world.api("essays/graders"), json={"name": "Ban Tuyên giáo tỉnh"}).json()["token"]
    inside = [m for m in world.members if m["district"] == district and m["id"] in PLAN.submitted]
    outside = next(m for m in world.members if m["district"] != district and m["id"] in PLAN.submitted)
    with world.as_token(grader) as c:
        listed = c.get(world.api("essays"), params={"status": "submitted"}).json()
        assert {line["member_id"] for line in listed} == {m["id"] for m in inside}
        for n, m in enumerate(inside):
            grade = ("xuất sắc", "tốt", "khá")[n % 3]
            r = c.post(world.api(f"essays/members/{m['id']}/grade"), json={"grade": grade, "comment": "Có đề xuất cụ thể"})
            assert r.status_code == 201, r.text
            PLAN.grades[m["id"]] = grade
        r = c.post(world.api(f"essays/members/{outside['id']}/grade"), json={"grade": "tốt"})
        assert r.status_code == 403, r.text
        assert c.get(world.api(f"essays/members/{outside['id']}")).status_code == 403
        assert c.post(world.api(f"essays/members/{inside[0]['id']}/grade"), json={"grade": "giỏi"}).status_code == 422
    with world.as_token(whole) as c:  # the province-wide grader regrades: the first grade stays in the history
        r = c.post(world.api(f"essays/members/{inside[0]['id']}/grade"), json={"grade": "đạt", "comment": "Chấm lại"})
        assert r.status_code == 201
        PLAN.grades[inside[0]["id"]] = "đạt"
        essay = c.get(world.api(f"essays/members/{inside[0]['id']}")).json()
        assert [g["grade"] for g in essay["grade_history"]] == ["đạt", "xuất sắc"]
        assert essay["grade"]["grader"] == "Ban Tuyên giáo tỉnh"


def test_rollup_matches_the_plan(world: Province) -> None:
    # Attendance: one commune's operator follows live (its members attend at the point), one member at home.
    commune = [p for p, v in world.points.items() if v["level"] == "commune"][-1]
    home = members_of(world, "Huyện Bình Sơn")[3]
    with world.as_token(world.point_tokens[commune]) as c:
        assert c.post(world.api("heartbeat")).status_code == 200
    with world.as_token(home["token"]) as c:
        assert c.post(world.api("heartbeat")).status_code == 200
    PLAN.attended |= {m["id"] for m in members_of(world, commune)} | {home["id"]}
    with world.server.admin() as c:
        rollup = c.get(world.api("essays/rollup")).json()
        tables = {t: list(csv.DictReader(io.StringIO(c.get(world.api("essays/rollup.csv"), params={"table": t}).text.lstrip("\ufeff"))))
                  for t in ("points", "districts", "not_submitted", "essays")}

    def expected(members: list[dict]) -> dict:
        ids = [m["id"] for m in members]
        grades = Counter(PLAN.grades[i] for i in ids if i in PLAN.grades)
        return {
            "members": len(ids), "attended": sum(i in PLAN.attended for i in ids), "replay": 0,
            "submitted": sum(i in PLAN.submitted for i in ids),
            "on_time": sum(i in PLAN.submitted and not PLAN.submitted[i] for i in ids),
            "late": sum(PLAN.submitted.get(i, False) for i in ids), "graded": sum(grades.values()),
            "grades": {g: grades.get(g, 0) for g in rollup["scale"]},
        }

    keys = ("members", "attended", "replay", "submitted", "on_time", "late", "graded", "grades")
    assert {k: rollup["totals"][k] for k in keys} == expected(world.members)
    for line in rollup["districts"]:
        got = {k: line["subtree"][k] for k in keys}
        assert got == expected([m for m in world.members if m["district"] == line["name"]]), line["name"]
    for line in rollup["points"]:
        assert {k: line["own"][k] for k in keys} == expected([m for m in world.members if m["point"] == line["name"]])
    missing = {m["id"] for m in world.members} - set(PLAN.submitted)
    assert {m["id"] for m in rollup["not_submitted"]} == missing
    assert len(tables["not_submitted"]) == len(missing)
    assert {row["point"] for row in tables["not_submitted"]} <= set(world.points)
    assert len(tables["essays"]) == len(PLAN.submitted)
    assert sum(int(row["submitted"]) for row in tables["points"]) == len(PLAN.submitted)
    district_rows = {row["name"]: row for row in tables["districts"]}
    assert int(district_rows["Tỉnh Thử Nghiệm"]["members"]) == 200
    assert "<svg" in rollup["charts"]["participation_svg"] and "Huyện Đông Hà" in rollup["charts"]["grades_svg"]


def test_proposals_group_search_merge_forward(world: Province) -> None:
    with world.server.admin() as c:
        listed = c.get(world.api("proposals")).json()
        by_field = {g["key"]: g["count"] for g in listed["by_field"]}
        by_district = {g["key"]: g["count"] for g in listed["by_district"]}
        fields, districts = Counter(), Counter()
        for (f, d), n in PLAN.proposals.items():
            fields[f] += n
            districts[d] += n
        assert by_field == dict(fields) and by_district == dict(districts)
        found = c.get(world.api("proposals"), params={"q": "phat trien kinh te"}).json()["proposals"]
        assert found and all(p["field"] == "economy" for p in found) and len(found) == fields["economy"]
        first, second = found[0], found[1]
        r = c.post(world.api(f"proposals/{second['id']}/merge"), json={"into": first["id"]})
        assert r.status_code == 200 and r.json()["merged_into"] == first["id"]
        assert c.post(world.api(f"proposals/{first['id']}/merge"), json={"into": first["id"]}).status_code == 409
        after = c.get(world.api("proposals"), params={"field": "economy"}).json()
        kept = next(p for p in after["proposals"] if p["id"] == first["id"])
        assert kept["duplicates"] == 1 and len(after["proposals"]) == fields["economy"] - 1
        assert after["total"] == fields["economy"]
        r = c.post(world.api(f"proposals/{first['id']}/forward"), json={"to": "Ban Tuyên giáo Tỉnh ủy"})
        assert r.status_code == 200 and r.json()["forwarded_at"]
        assert c.post(world.api(f"proposals/{second['id']}/forward"), json={}).status_code == 409
        rows = list(csv.DictReader(io.StringIO(c.get(world.api("proposals/export.csv")).text.lstrip("\ufeff"))))
        assert len(rows) == sum(PLAN.proposals.values()) - 1
        assert next(r for r in rows if r["id"] == first["id"])["forwarded_to"] == "Ban Tuyên giáo Tỉnh ủy"


def test_printable_report_renders_in_chromium(world: Province, open_page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with world.server.admin() as c:
        r = c.get(world.api("proposals/report.html"))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = open_page(f"{world.server.url}/index.html")
    page.set_content(r.text)
    assert page.evaluate("document.querySelectorAll('section.district').length") == len(DISTRICTS)
    assert page.evaluate("document.querySelectorAll('svg rect').length") > 10
    box = page.evaluate("(() => { const b = document.querySelector('svg').getBoundingClientRect(); return [b.width, b.height]; })()")
    assert box[0] > 300 and box[1] > 100
    shot = tmp_path / "proposals-report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    print(f"report screenshot: {shot}")


def test_member_page_shows_attendance_essay_and_grade(world: Province, open_page) -> None:  # type: ignore[no-untyped-def]
    member = next(m for m in world.members if m["id"] in PLAN.grades and PLAN.grades[m["id"]] == "đạt")
    page = open_page(f"{world.server.url}/viewer.html#conference={world.conference}&token={member['token']}")
    state = page.wait_until("document.getElementById('essay-state')?.textContent", what="the essay's state")
    assert "Đã nộp" in state and "Xếp loại: đạt" in state
    assert "Chấm lại" in page.evaluate("document.getElementById('essay-grade').textContent")
    assert page.evaluate("document.getElementById('essay-attendance').textContent") == "Chưa tham dự"
    # The deadline has passed and late essays are refused now: the page says so.
    assert "đã hết hạn nộp" in page.evaluate("document.getElementById('essay-card').textContent")
    home = next(m for m in world.members if m["id"] in PLAN.attended and m["district"] == "Huyện Bình Sơn")
    page = open_page(f"{world.server.url}/viewer.html#conference={world.conference}&token={home['token']}")
    attended = page.wait_until("document.getElementById('essay-attendance')?.textContent", what="attendance")
    assert attended == "Đã tham dự trực tiếp"
    assert "Chưa nộp" in page.evaluate("document.getElementById('essay-state').textContent")
    at_point = next(m for m in world.members if m["id"] in PLAN.attended and m["id"] != home["id"])
    with world.as_token(at_point["token"]) as c:
        me = c.get(world.api("essays/me")).json()
    assert me["attendance"] == "point" and me["essay"]["member_id"] == at_point["id"]


def test_grader_page_lists_and_grades(world: Province, open_page) -> None:  # type: ignore[no-untyped-def]
    district = "Huyện Cẩm Lý"
    with world.server.admin() as c:
        grader = c.post(world.api("essays/graders"), json={"name": "Tổ chấm Cẩm Lý",
                                                           "point_id": world.points[district]["id"]}).json()
    expected = {m["id"] for m in world.members if m["district"] == district and m["id"] in PLAN.submitted}
    page = open_page(grader["links"]["page"])
    page.wait_until(f"document.querySelectorAll('#essay-rows tr').length === {len(expected)}", what="the ungraded essays")
    assert set(page.evaluate("[...document.querySelectorAll('#essay-rows tr')].map(r => r.dataset.member)")) == expected
    first = page.evaluate("document.querySelector('#essay-rows tr').dataset.member")
    page.click("#essay-rows tr a")
    page.wait_until("document.getElementById('grade') !== null", what="the grading form")
    page.select_option("#grade", "khá")
    page.fill("#comment", "Đề xuất sát thực tế")
    page.click("#essay-view button[type=submit]")
    page.wait_until("document.querySelectorAll('#grade-history li').length === 1", what="the grade saved")
    with world.server.admin() as c:
        essay = c.get(world.api(f"essays/members/{first}")).json()
    assert essay["grade"]["grade"] == "khá" and essay["grade"]["grader"] == "Tổ chấm Cẩm Lý"
    PLAN.grades[first] = "khá"


def test_cli_status_and_exports(world: Province, tmp_path: Path) -> None:
    admin = world.server.admin_token
    status = diemcau(world.server, admin, "essays", "status", world.conference)
    assert status.returncode == 0, status.stderr
    total = next(line for line in status.stdout.splitlines() if line.startswith("Total"))
    assert total.split()[1:6] == ["200", str(len(PLAN.attended)), "0", str(len(PLAN.submitted)),
                                  f"{len(PLAN.submitted) * 100 / 200:g}%"]
    assert all(d in status.stdout for d in DISTRICTS)
    missing = diemcau(world.server, admin, "essays", "export", world.conference, "--table", "not_submitted")
    assert missing.returncode == 0, missing.stderr
    assert len(list(csv.DictReader(io.StringIO(missing.stdout)))) == 200 - len(PLAN.submitted)
    out = tmp_path / "de-xuat.csv"
    exported = diemcau(world.server, admin, "proposals", "export", world.conference, "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert len(rows) == sum(PLAN.proposals.values()) - 1 and {r["field"] for r in rows} >= {"Kinh tế", "Xây dựng Đảng"}


def test_dashboard_study_section_merges_and_forwards(world: Province, open_page) -> None:  # type: ignore[no-untyped-def]
    organiser = world.server.token(world.conference, "organiser", "Ban tổ chức")
    page = open_page(f"{world.server.url}/dashboard.html#conference={world.conference}&token={organiser}")
    totals = page.wait_until("document.getElementById('study-totals')?.textContent", what="the study roll-up")
    assert f"đã nộp {len(PLAN.submitted)}" in totals
    assert page.evaluate("document.querySelectorAll('#study-rollup .charts svg').length") == 2
    assert page.evaluate("document.querySelectorAll('#study-rollup .rate-tree .rate').length") == 20
    assert page.evaluate("document.querySelectorAll('#not-submitted li').length") == 30  # the first 30 shown
    page.wait_until("document.querySelectorAll('#proposal-list li').length > 2", what="the proposals")
    assert all(d in page.evaluate("document.getElementById('proposal-counts').textContent") for d in DISTRICTS)
    ids = page.evaluate("[...document.querySelectorAll('#proposal-list li')]"
                        ".filter(li => li.querySelector('button.forward')).map(li => li.dataset.id)")
    page.click(f"#proposal-list li[data-id='{ids[1]}'] button.merge")
    page.click(f"#proposal-list li[data-id='{ids[0]}'] button.merge-into")
    page.wait_until(f"!document.querySelector(\"#proposal-list li[data-id='{ids[1]}']\")", what="the duplicate merged away")
    page.click(f"#proposal-list li[data-id='{ids[0]}'] button.forward")
    page.wait_until(f"document.querySelector(\"#proposal-list li[data-id='{ids[0]}']\").textContent.includes('✓ đã chuyển')",
                    what="marked forwarded")
    with world.server.admin() as c:
        kept = next(p for p in c.get(world.api("proposals")).json()["proposals"] if p["id"] == ids[0])
    assert kept["duplicates"] >= 1 and kept["forwarded_to"] == "Ban Tuyên giáo Tỉnh ủy"


def test_point_page_submits_for_a_delegate(world: Province, open_page) -> None:  # type: ignore[no-untyped-def]
    with world.server.admin() as c:  # late essays accepted again (the deadline has passed: this one is late)
        past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
        assert c.put(world.api("essays/assignment"), json={"prompt": "Đề xuất cách thực hiện nghị quyết",
                                                           "deadline": past, "accept_late": True}).status_code == 200
    point = [p for p, v in world.points.items() if v["level"] == "commune"][1]
    delegate = next(m for m in members_of(world, point) if m["id"] not in PLAN.submitted)
    page = open_page(f"{world.server.url}/point.html#conference={world.conference}&token={world.point_tokens[point]}")
    page.wait_until("document.getElementById('study-slot').dataset.ready", what="the study section")
    assert page.evaluate("document.querySelectorAll('#on-behalf-member option').length") == PER_POINT + 1
    page.select_option("#on-behalf-member", delegate["id"])
    page.wait_until("document.querySelector('#on-behalf-form textarea') !== null", what="the essay form")
    page.fill("#on-behalf-form textarea", f"{TEXT} (đại biểu không có điện thoại)")
    page.click("#on-behalf-form button.add-proposal")
    page.fill("#on-behalf-form .proposal-row input[name=title]", "Hỗ trợ đảng viên cao tuổi học tập")
    page.click("#on-behalf-form button[type=submit]")
    state = page.wait_until("(t => t.includes('Đã nộp') && t)(document.getElementById('on-behalf-state').textContent)",
                            what="the submission accepted")
    assert "nộp muộn" in state and "điểm cầu gửi hộ" in state
    with world.server.admin() as c:
        essay = c.get(world.api(f"essays/members/{delegate['id']}")).json()
    assert essay["submitted_by"] == "point" and essay["late"] is True
    assert essay["proposals"] == [{"title": "Hỗ trợ đảng viên cao tuổi học tập", "field": "other", "detail": ""}]
