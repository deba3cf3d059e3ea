"""Spreadsheet-friendly CSV: imports (BOM, ``;`` or ``,`` separators, row numbers as in Excel) and
exports whose text cells a spreadsheet cannot mistake for formulas."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# A cell starting with one of these is a formula (or becomes one) in Excel, LibreOffice and Sheets
# (OWASP "CSV injection"): names come from imports and the API, so exports must neutralise them.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class RowError:
    """A problem in one input row; ``row`` is the spreadsheet line number (the header is row 1)."""

    row: int
    message: str


@dataclass
class ImportErrors(Exception):
    """Raised when an import is rejected; nothing is written when any row is bad."""

    message: str
    errors: list[RowError] = field(default_factory=list)

    def as_detail(self, limit: int = 200) -> dict:
        return {
            "message": self.message,
            "errors": [{"row": e.row, "message": e.message} for e in self.errors[:limit]],
            "error_count": len(self.errors),
        }


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM) is what Excel and LibreOffice export; refuse anything else clearly."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportErrors(f"the file is not UTF-8 text (byte {exc.start}); save it as 'CSV UTF-8'")


def read_rows(
    text: str, required: tuple[str, ...], optional: tuple[str, ...] = (), aliases: dict[str, str] | None = None
) -> list[tuple[int, dict[str, str]]]:
    """Return ``(row_number, {column: value})`` for every non-blank data row.

    Header names are matched case-insensitively (``aliases`` maps alternative spellings); the
    separator is whichever of ``,`` ``;`` or tab the header line uses.
    """
    aliases = aliases or {}
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise ImportErrors(f"empty file: expected a header row with columns {', '.join(required)}")
    header_line = lines[0]
    delimiter = max((",", ";", "\t"), key=header_line.count)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = [aliases.get(h.strip().lower(), h.strip().lower()) for h in next(reader)]
    except csv.Error as exc:
        raise _unreadable(reader.line_num, exc)
    missing = [c for c in required if c not in header]
    if missing:
        raise ImportErrors(
            f"missing column(s) {', '.join(missing)}; the header row must contain "
            f"{', '.join(required)}" + (f" (optional: {', '.join(optional)})" if optional else "")
        )
    known = set(required) | set(optional)
    rows: list[tuple[int, dict[str, str]]] = []
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a field over the csv module's size limit
            raise _unreadable(reader.line_num, exc)
        row_number = reader.line_num
        if not any(v.strip() for v in values):
            continue
        record = {
            col: (values[i].strip() if i < len(values) else "")
            for i, col in enumerate(header)
            if col in known
        }
        rows.append((row_number, record))
    return rows


def _unreadable(line: int, exc: csv.Error) -> ImportErrors:
    message = f"the file cannot be read as CSV at line {line}: {exc}"
    return ImportErrors(message, [RowError(line, str(exc))])


def spreadsheet_cell(value: Any) -> Any:
    """``value``, with a leading apostrophe when it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def write_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A CSV file for spreadsheets: BOM (Excel then reads UTF-8), CRLF, no cell that is a formula."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([spreadsheet_cell(h) for h in header])
    writer.writerows([spreadsheet_cell(v) for v in row] for row in rows)
    return out.getvalue()
