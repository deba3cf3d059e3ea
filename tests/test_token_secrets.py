"""Token secrets never start with ``-``: CSV exports escape such a cell with an apostrophe (formula
injection, server.domain.csvio), and a point or member who copies the token from the file gets a
403 (it happened in CI: the attendance and CLI tests opened WebSockets with tokens read from CSV)."""

from __future__ import annotations

from server.domain.csvio import spreadsheet_cell
from server.domain.tokens import new_secret


def test_no_secret_starts_like_a_formula() -> None:
    secrets = [new_secret() for _ in range(5000)]  # ~78 would start with "-" from token_urlsafe
    assert all(spreadsheet_cell(s) == s for s in secrets)
    assert len(set(secrets)) == 5000 and {len(s) for s in secrets} == {32}
