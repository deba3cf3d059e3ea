"""Shared request guards for the organiser APIs: load the conference, then check the caller's role."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from fastapi import HTTPException, Request, status
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.conferences import load_conference
from server.db.models import Conference
from server.deps import authorize
from server.domain.csvio import ImportErrors
from server.domain.tokens import ROLES, Principal
from server.limits.body_size import allow_upload
from server.settings import Settings

ANY_ROLE = ROLES

T = TypeVar("T")


class _HasId(Protocol):
    id: str


S = TypeVar("S", bound=_HasId)


async def conference_for(
    db: AsyncSession, conference_id: str, principal: Principal, *roles: str
) -> Conference:
    """404 for an unknown conference (checked first, as elsewhere), 403 for the wrong role."""
    conference = await load_conference(db, conference_id)
    authorize(principal, conference_id, *roles)
    return conference


async def or_404(work: Awaitable[T], not_found: type[Exception], detail: str) -> T:
    """``await work``, the domain's not-found exception becoming a 404 with ``detail``: routers name
    the missing thing in their own words without a try block each."""
    try:
        return await work
    except not_found:
        raise HTTPException(404, detail)


async def self_or_organiser(
    db: AsyncSession, conference_id: str, principal: Principal, role: str, subject_id: str
) -> Conference:
    """A subject (a member, a point operator) may read its own record; anyone else must organise."""
    if principal.role == role and principal.subject_id == subject_id:
        return await conference_for(db, conference_id, principal, role)
    return await conference_for(db, conference_id, principal, "organiser")


def pick_subjects(
    items: Sequence[S], wanted_ids: Sequence[str] | None, noun: str, shown: int | None = None
) -> list[S]:
    """The items named by ``wanted_ids`` (all when None); 422 naming the unknown ids (the first
    ``shown`` of them, sorted) so a bulk request never half-succeeds."""
    if wanted_ids is None:
        return list(items)
    wanted = set(wanted_ids)
    unknown = sorted(wanted - {i.id for i in items})
    if unknown:
        raise HTTPException(422, f"unknown {noun}(s): {', '.join(unknown[:shown])}")
    return [i for i in items if i.id in wanted]


async def csv_import(
    request: Request,
    db: AsyncSession,
    settings: Settings,
    conference_id: str,
    principal: Principal,
    run: Callable[[bytes], Awaitable[T]],
) -> T:
    """An organiser's CSV import: authorise first, then lift the JSON body limit, read the file and
    ``run`` the domain import on it; a rejected file becomes the 400 listing its bad rows."""
    await conference_for(db, conference_id, principal, "organiser")
    allow_upload(request, settings.max_upload_bytes)  # past the JSON body limit
    data = await read_upload_body(request, settings.max_upload_bytes)
    try:
        return await run(data)
    except ImportErrors as exc:
        raise import_failed(exc)


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
