"""Study materials: organisers upload, every participant of the conference downloads."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.types import Message, Receive

from server.api.guards import ANY_ROLE, conference_for, or_404
from server.db.models import Material
from server.deps import DbDep, PrincipalDep, SettingsDep
from server.domain import materials as domain
from server.limits.body_size import allow_upload

router = APIRouter(prefix="/api/v1/conferences/{conference_id}/materials", tags=["materials"])

FORM_OVERHEAD = 64 * 1024  # multipart boundaries, headers and a title field


class MaterialOut(BaseModel):
    id: str
    title: str
    filename: str
    content_type: str
    size: int
    sha256: str
    uploaded_at: dt.datetime
    download_url: str


class BodyTooLarge(Exception):
    pass


def _limited(receive: Receive, limit: int) -> Receive:
    """Stop reading a request body (without a trustworthy Content-Length) once it passes ``limit``."""
    received = 0

    async def limited_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge()
        return message

    return limited_receive


def material_out(m: Material) -> MaterialOut:
    return MaterialOut(
        id=m.id,
        title=m.title,
        filename=m.filename,
        content_type=m.content_type,
        size=m.size,
        sha256=m.sha256,
        uploaded_at=m.uploaded_at,
        download_url=f"/api/v1/conferences/{m.conference_id}/materials/{m.id}",
    )


@router.post(
    "",
    status_code=201,
    response_model=MaterialOut,
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "title": {"type": "string"},
                        },
                    }
                }
            }
        }
    },
    description="Upload one file (form field `file`, optional `title`). Accepted extensions: "
    + ", ".join(domain.allowed_extensions()),
    responses={
        400: {"description": "no file, empty file or unusable file name"},
        413: {"description": "file larger than DIEMCAU_MAX_UPLOAD_BYTES"},
        415: {"description": "file type not accepted, or content does not match it"},
    },
)
async def upload_material(
    conference_id: str,
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> MaterialOut:
    """Upload one file (form field ``file``, optional ``title``); see the description for types."""
    await conference_for(db, conference_id, principal, "organiser")
    limit = settings.max_upload_bytes
    allow_upload(request, limit)  # past the JSON body limit
    too_large = HTTPException(413, domain.too_large_message(limit))
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + FORM_OVERHEAD:
        raise too_large
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HTTPException(415, "send the file as multipart/form-data in a field named 'file'")
    limited = Request(request.scope, _limited(request.receive, limit + FORM_OVERHEAD))
    try:
        form = await limited.form(max_files=1, max_fields=5)
    except BodyTooLarge:
        raise too_large
    try:
        upload = form.get("file")
        if isinstance(upload, str):  # a part without a file name arrives as a plain field
            raise HTTPException(400, "the file needs a name: the 'file' field was sent without one")
        if not isinstance(upload, UploadFile):
            raise HTTPException(400, "the form has no file: send it in a field named 'file'")
        title = form.get("title")
        material = await domain.save_upload(
            db,
            settings.data_dir,
            conference_id,
            upload.file,
            upload.filename,
            upload.content_type,
            limit,
            title=title if isinstance(title, str) else "",
            uploaded_by=principal.token_id,
        )
    except domain.MaterialRejected as exc:
        raise HTTPException(exc.status, exc.message)
    finally:
        await form.close()
    return material_out(material)


@router.get("", response_model=list[MaterialOut])
async def list_materials(
    conference_id: str,
    db: DbDep,
    principal: PrincipalDep,
) -> list[MaterialOut]:
    await conference_for(db, conference_id, principal, *ANY_ROLE)
    return [material_out(m) for m in await domain.list_materials(db, conference_id)]


@router.get("/{material_id}", response_class=FileResponse)
async def download_material(
    conference_id: str,
    material_id: str,
    db: DbDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> FileResponse:
    """The file itself, as an attachment under its original (sanitised) name (token in the header)."""
    await conference_for(db, conference_id, principal, *ANY_ROLE)
    try:
        material = await domain.get_material(db, conference_id, material_id)
        path = domain.stored_path(settings.data_dir, material)
    except domain.MaterialNotFound:
        raise HTTPException(404, f"unknown material '{material_id}'")
    if not path.is_file():
        raise HTTPException(410, "the file of this material is missing on the server")
    return FileResponse(
        path,
        media_type=material.content_type,
        headers={
            "Content-Disposition": domain.content_disposition(material.filename),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=0",
            "ETag": f'"{material.sha256}"',
        },
    )


@router.delete("/{material_id}", status_code=204)
async def delete_material(
    conference_id: str,
    material_id: str,
    db: DbDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> None:
    await conference_for(db, conference_id, principal, "organiser")
    await or_404(
        domain.delete_material(db, settings.data_dir, conference_id, material_id),
        domain.MaterialNotFound,
        f"unknown material '{material_id}'",
    )
