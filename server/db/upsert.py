"""INSERT .. ON CONFLICT DO NOTHING in the dialect of the session's database (SQLite or PostgreSQL),
for rows that concurrent transactions may both create."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession


def insert_ignoring_conflicts(db: AsyncSession, table: Any) -> Any:
    """An insert into ``table`` that skips rows whose key already exists."""
    insert = pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert
    return insert(table).on_conflict_do_nothing()
