"""Bounds of the paged lists' query parameters.

An offset reaches the database as a bind parameter: one past a 64-bit integer made SQLite's driver
raise OverflowError (a 500). No list holds 2**31 rows, so a larger offset is refused with a 422.
"""

from __future__ import annotations

MAX_OFFSET = 2**31 - 1
