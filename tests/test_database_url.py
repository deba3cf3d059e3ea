"""A ``%`` in DATABASE_URL (a percent-encoded password or path) reaches the migrations unchanged
(issue 21, item 11): alembic's config is a ConfigParser, whose interpolation used to reject it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.support.server import ServerFactory


def test_percent_in_database_url(tmp_path: Path, start_server: ServerFactory) -> None:
    # ``%2D`` is an escaped ``-``: SQLAlchemy decodes it, so the file is ``dc-attendance.db``.
    url = f"sqlite+aiosqlite:///{tmp_path}/dc%2Dattendance.db"
    with start_server(database_url=url, workers=1) as srv:
        cid = srv.create_conference("Hội nghị 100%")
        with srv.admin() as c:
            assert c.get(f"/api/v1/conferences/{cid}").json()["title"] == "Hội nghị 100%"
    with sqlite3.connect(tmp_path / "dc-attendance.db") as db:
        assert db.execute("select title from conferences").fetchall() == [("Hội nghị 100%",)]
        assert db.execute("select count(*) from alembic_version").fetchone() == (1,)
