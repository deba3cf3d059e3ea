"""Shared request guards for the organiser APIs: load the conference, then check the caller's role."""

from __future__ import annotations

from fastapi import HTTPException, Request, status
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.conferences import load_conference
from server.db.models import Conference
from server.deps import authorize
from server.domain.csvio import ImportErrors
from server.domain.tokens import ROLES, Principal

ANY_ROLE = ROLES


async def conference_for(
    db: AsyncSession, conference_id: str, principal: Principal, *roles: str
) -> Conference:
    """404 for an unknown conference (checked first, as elsewhere), 403 for the wrong role."""
    conference = await load_conference(db, conference_id)
    authorize(principal, conference_id, *roles)
    return conference


def import_failed(exc: ImportErrors) -> HTTPException:
    """400 whose detail lists every bad row: ``{"message", "errors": [{"row", "message"}]}``."""
    return HTTPException(status.HTTP_400_BAD_REQUEST, exc.as_detail())


async def read_upload_body(request: Request, max_bytes: int) -> bytes:
    """The CSV file of an import, sent raw (text/csv) or as the ``file`` field of a form."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, f"the file is larger than the limit of {max_bytes} bytes")
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=5)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise HTTPException(400, "the form must have a 'file' field with the CSV file")
        data = await upload.read(max_bytes + 1)
    else:
        buffer = bytearray()
        async for chunk in request.stream():
            buffer += chunk
            if len(buffer) > max_bytes:
                break
        data = bytes(buffer)
    if len(data) > max_bytes:
        raise HTTPException(413, f"the file is larger than the limit of {max_bytes} bytes")
    return data
