"""A ``%`` in DATABASE_URL (a percent-encoded password or path) reaches the migrations unchanged
(issue 21, item 11): alembic's config is a ConfigParser, whose interpolation used to reject it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.support.server import ServerProcess


def test_percent_in_database_url(tmp_path: Path) -> None:
    # ``%2D`` is an escaped ``-``: SQLAlchemy decodes it, so the file is ``dc-attendance.db``.
    url = f"sqlite+aiosqlite:///{tmp_path}/dc%2Dattendance.db"
    srv = ServerProcess(tmp_path / "data", env={"DIEMCAU_DATABASE_URL": url, "DIEMCAU_WORKERS": "1"})
    try:
        srv.start()
        cid = srv.create_conference("Hội nghị 100%")
        with srv.admin() as c:
            assert c.get(f"/api/v1/conferences/{cid}").json()["title"] == "Hội nghị 100%"
    finally:
        srv.stop()
    with sqlite3.connect(tmp_path / "dc-attendance.db") as db:
        assert db.execute("select title from conferences").fetchall() == [("Hội nghị 100%",)]
        assert db.execute("select count(*) from alembic_version").fetchone() == (1,)
