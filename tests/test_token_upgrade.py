"""Upgrading a database whose tokens predate lifetimes: they get a whole default lifetime from the
upgrade, so links handed out weeks before keep working, and they still end."""

from __future__ import annotations

import datetime as dt
import sqlite3

from alembic import command

from server.db.migrate import alembic_config, upgrade_sync
from server.domain.tokens import is_dead
from server.settings import DEFAULT_TOKEN_LIFETIME_DAYS


def test_old_tokens_get_a_lifetime_from_the_upgrade(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "old.db"
    url = f"sqlite+aiosqlite:///{path}"
    command.upgrade(alembic_config(url), "0100_recordings")  # the schema before token lifetimes
    created = dt.datetime.now(dt.UTC) - dt.timedelta(days=100)  # older than any default lifetime
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO conferences (id, title, status, created_at) VALUES ('c1', 'x', 'scheduled', ?)",
                   (created.strftime("%Y-%m-%d %H:%M:%S.%f"),))
        for role in ("member", "point", "organiser"):
            db.execute("INSERT INTO access_tokens (id, conference_id, role, name, token_hash, created_at, revoked)"
                       " VALUES (?, 'c1', ?, '', ?, ?, 0)",
                       (role, role, role * 8, created.strftime("%Y-%m-%d %H:%M:%S.%f")))
    upgrade_sync(url)
    now = dt.datetime.now(dt.UTC)
    with sqlite3.connect(path) as db:
        rows = dict(db.execute("SELECT role, expires_at FROM access_tokens").fetchall())
    for role in ("member", "point", "organiser"):
        expires = dt.datetime.fromisoformat(rows[role]).replace(tzinfo=dt.UTC)
        days = DEFAULT_TOKEN_LIFETIME_DAYS[role]
        assert abs((expires - now) - dt.timedelta(days=days)) < dt.timedelta(minutes=5), (role, expires)
        assert not is_dead(0, role, created, expires, DEFAULT_TOKEN_LIFETIME_DAYS, now)
        assert is_dead(0, role, created, expires, DEFAULT_TOKEN_LIFETIME_DAYS, now + dt.timedelta(days=days + 1))
