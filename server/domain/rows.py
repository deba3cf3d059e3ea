"""Loading a row by id only when it belongs where the caller says (its conference, its recording):
ids come from URLs, so a row of another conference must look exactly like a missing one."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

R = TypeVar("R")


async def owned_row(db: AsyncSession, model: type[R], row_id: str, **owner: Any) -> R | None:
    """The ``model`` row ``row_id`` if each ``owner`` column has the given value, else None."""
    row = await db.get(model, row_id)
    if row is None or any(getattr(row, column) != value for column, value in owner.items()):
        return None
    return row
