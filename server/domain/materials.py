"""Study materials: validated uploads stored under random names, downloaded by any participant.

Files are stored as ``<data_dir>/materials/<conference id>/<random hex>``; the uploader's file name
is kept only as (sanitised) metadata, so no name can reach the file system. A file is accepted
only when its extension is on the allow-list, the declared content type fits that extension, and
its first bytes look like that kind of file.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import Material
from server.domain.rows import conference_row

OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy Office (doc, xls, ppt)
ZIP = b"PK\x03\x04"  # OOXML and OpenDocument


@dataclass(frozen=True)
class FileKind:
    content_type: str
    magic: tuple[bytes, ...] = ()  # empty = plain text (UTF-8, no NUL bytes)


KINDS: dict[str, FileKind] = {
    "pdf": FileKind("application/pdf", (b"%PDF-",)),
    "doc": FileKind("application/msword", (OLE,)),
    "docx": FileKind("application/vnd.openxmlformats-officedocument.wordprocessingml.document", (ZIP,)),
    "xls": FileKind("application/vnd.ms-excel", (OLE,)),
    "xlsx": FileKind("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", (ZIP,)),
    "ppt": FileKind("application/vnd.ms-powerpoint", (OLE,)),
    "pptx": FileKind("application/vnd.openxmlformats-officedocument.presentationml.presentation", (ZIP,)),
    "odt": FileKind("application/vnd.oasis.opendocument.text", (ZIP,)),
    "ods": FileKind("application/vnd.oasis.opendocument.spreadsheet", (ZIP,)),
    "odp": FileKind("application/vnd.oasis.opendocument.presentation", (ZIP,)),
    "rtf": FileKind("application/rtf", (b"{\\rtf",)),
    "txt": FileKind("text/plain"),
    "csv": FileKind("text/csv"),
    "png": FileKind("image/png", (b"\x89PNG\r\n\x1a\n",)),
    "jpg": FileKind("image/jpeg", (b"\xff\xd8\xff",)),
    "jpeg": FileKind("image/jpeg", (b"\xff\xd8\xff",)),
}
# What browsers and office suites send besides the canonical type.
GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream", "application/x-download"}
EXTRA_TYPES = {
    "rtf": {"text/rtf"},
    "csv": {"text/plain", "application/vnd.ms-excel", "application/csv"},
    "jpg": {"image/pjpeg"},
    "jpeg": {"image/pjpeg"},
    "docx": {"application/zip"},
    "xlsx": {"application/zip"},
    "pptx": {"application/zip"},
}
MAX_NAME = 200
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"|?*\\/]+')


class MaterialRejected(ValueError):
    """An upload refused; ``status`` is the HTTP status that explains why (400, 413 or 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class MaterialNotFound(LookupError):
    pass


def allowed_extensions() -> list[str]:
    return sorted(KINDS)


def sanitise_filename(raw: str | None) -> str:
    """The display name to keep: last path component only, no control or reserved characters.

    ``../../etc/passwd.pdf`` becomes ``passwd.pdf``; a name that is empty afterwards is refused.
    """
    name = unicodedata.normalize("NFC", raw or "")
    name = re.split(r"[\\/]", name)[-1]
    name = _UNSAFE.sub("_", name).strip().lstrip(".").strip()
    if not name or not name.strip("_"):
        raise MaterialRejected(400, "the file needs a name (e.g. 'nghi-quyet.pdf')")
    if len(name) > MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: MAX_NAME - len(ext) - 1] + dot + ext) if dot and len(ext) <= 10 else name[:MAX_NAME]
    return name


def extension_of(name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot and stem else ""


def check_type(name: str, declared: str | None) -> FileKind:
    """Refuse (415) names whose extension is not allowed or whose declared type contradicts it."""
    ext = extension_of(name)
    kind = KINDS.get(ext)
    if kind is None:
        raise MaterialRejected(
            415,
            f"file type '.{ext}' is not accepted" if ext else "the file name has no extension",
        )
    declared = (declared or "").split(";")[0].strip().lower()
    if declared not in GENERIC_TYPES | {kind.content_type} | EXTRA_TYPES.get(ext, set()):
        raise MaterialRejected(
            415, f"content type '{declared}' does not match a .{ext} file (expected {kind.content_type})"
        )
    return kind


def check_content(ext: str, kind: FileKind, head: bytes) -> None:
    """Refuse (415) files whose first bytes are not what the extension promises."""
    if kind.magic:
        if not any(head.startswith(m) for m in kind.magic):
            raise MaterialRejected(415, f"the file content is not a valid .{ext} file")
        return
    if b"\x00" in head:
        raise MaterialRejected(415, f"the file content is not plain text (.{ext})")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a character cut at the sniffing boundary is fine
            raise MaterialRejected(415, f"the file content is not UTF-8 text (.{ext})")


def ascii_fallback(name: str) -> str:
    """Plain-ASCII variant of a name for old clients: Vietnamese letters lose their accents."""
    name = name.replace("đ", "d").replace("Đ", "D")
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    folded = re.sub(r'[^A-Za-z0-9._ -]+', "_", folded).strip() or "download"
    return folded


def content_disposition(name: str) -> str:
    return f"attachment; filename=\"{ascii_fallback(name)}\"; filename*=UTF-8''{quote(name, safe='')}"


def conference_dir(data_dir: Path, conference_id: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", conference_id):
        raise MaterialNotFound(conference_id)
    return data_dir / "materials" / conference_id


def stored_path(data_dir: Path, material: Material) -> Path:
    if not re.fullmatch(r"[0-9a-f]{32}", material.stored_name):
        raise MaterialNotFound(material.id)
    return conference_dir(data_dir, material.conference_id) / material.stored_name


def _store(source: BinaryIO, target: Path, ext: str, kind: FileKind, max_bytes: int) -> tuple[int, str]:
    """Copy ``source`` to ``target`` checking content and size; remove ``target`` on any refusal."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    try:
        with open(target, "xb") as out:
            while chunk := source.read(1024 * 1024):
                if size == 0:
                    check_content(ext, kind, chunk[:4096])
                size += len(chunk)
                if size > max_bytes:
                    raise MaterialRejected(413, too_large_message(max_bytes))
                digest.update(chunk)
                out.write(chunk)
            if size == 0:
                raise MaterialRejected(400, "the file is empty")
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return size, digest.hexdigest()


async def save_upload(
    db: AsyncSession,
    data_dir: Path,
    conference_id: str,
    source: BinaryIO,
    filename: str | None,
    declared_type: str | None,
    max_bytes: int,
    title: str = "",
    uploaded_by: str | None = None,
) -> Material:
    """Validate and store one uploaded file; on any refusal nothing is left on disk."""
    name = sanitise_filename(filename)
    kind = check_type(name, declared_type)
    folder = conference_dir(data_dir, conference_id)
    stored_name = secrets.token_hex(16)
    # Copying (and fsync) runs in a thread so a 50 MB upload does not stall live sessions.
    size, sha256 = await asyncio.to_thread(
        _store, source, folder / stored_name, extension_of(name), kind, max_bytes
    )
    material = Material(
        conference_id=conference_id,
        title=(title or "").strip()[:500] or name,
        filename=name,
        stored_name=stored_name,
        content_type=kind.content_type,
        size=size,
        sha256=sha256,
        uploaded_by=uploaded_by,
    )
    db.add(material)
    try:
        await db.flush()
    except BaseException:
        (folder / stored_name).unlink(missing_ok=True)
        raise
    return material


def too_large_message(max_bytes: int) -> str:
    return f"the file is larger than the {human_size(max_bytes)} limit ({max_bytes} bytes)"


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KiB", "MiB"):
        if size < 1024:
            return f"{n} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


async def list_materials(db: AsyncSession, conference_id: str) -> list[Material]:
    rows = await db.execute(
        select(Material).where(Material.conference_id == conference_id).order_by(Material.uploaded_at)
    )
    return list(rows.scalars())


async def get_material(db: AsyncSession, conference_id: str, material_id: str) -> Material:
    return await conference_row(db, Material, material_id, conference_id, MaterialNotFound)


async def delete_material(db: AsyncSession, data_dir: Path, conference_id: str, material_id: str) -> None:
    material = await get_material(db, conference_id, material_id)
    await db.delete(material)
    await db.flush()
    stored_path(data_dir, material).unlink(missing_ok=True)
