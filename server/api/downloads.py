"""File downloads the organiser APIs hand out (CSV exports), with one set of headers for all."""

from __future__ import annotations

from fastapi import Response


def csv_download(text: str, filename: str) -> Response:
    """``text`` as a CSV attachment named ``filename``: spreadsheets open it rather than show it."""
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
