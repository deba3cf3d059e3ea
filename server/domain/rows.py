"""Loading a row by id only when it belongs where the caller says (its conference, its recording):
ids come from URLs, so a row of another conference must look exactly like a missing one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

R = TypeVar("R")


async def owned_row(db: AsyncSession, model: type[R], row_id: str, **owner: Any) -> R | None:
    """The ``model`` row ``row_id`` if each ``owner`` column has the given value, else None."""
    row = await db.get(model, row_id)
    if row is None or any(getattr(row, column) != value for column, value in owner.items()):
        return None
    return row


async def conference_row(
    db: AsyncSession, model: type[R], row_id: str, conference_id: str, not_found: Callable[[str], Exception]
) -> R:
    """The ``model`` row ``row_id`` of this conference; ``not_found(row_id)`` is raised otherwise."""
    row = await owned_row(db, model, row_id, conference_id=conference_id)
    if row is None:
        raise not_found(row_id)
    return row


async def delete_owned_row(db: AsyncSession, model: type[Any], row_id: str, **owner: Any) -> bool:
    """Delete the row as :func:`owned_row` finds it; False (nothing done) when there is none."""
    row = await owned_row(db, model, row_id, **owner)
    if row is None:
        return False
    await db.delete(row)
    await db.flush()
    return True
