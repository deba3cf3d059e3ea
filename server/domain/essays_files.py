"""Essay files: PDF, DOCX or ODT uploads, checked like study materials, with their text extracted.

The file is kept under a random name in ``<data_dir>/essays/<conference id>/``; its text goes into
the essay so graders and the proposals search can read it without opening the file. Extraction is
best effort: a file whose text cannot be read is still accepted (a scan, a damaged document).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from xml.etree import ElementTree

from server.domain.materials import (
    MaterialRejected,
    _store as store_checked,  # the materials' checked copy: magic bytes, size limit, fsync, no leftovers
    check_type,
    conference_dir,
    extension_of,
    sanitise_filename,
)

log = logging.getLogger(__name__)

ESSAY_EXTENSIONS = ("pdf", "docx", "odt")
MAX_PDF_PAGES = 200
MAX_XML_BYTES = 20 * 1024 * 1024  # of a document's unpacked XML: a zip bomb stops here
MAX_TEXT_CHARS = 200_000
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_ODF_TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"


@dataclass(frozen=True)
class StoredFile:
    filename: str
    stored_name: str
    content_type: str
    size: int
    text: str


def essays_dir(data_dir: Path, conference_id: str) -> Path:
    return conference_dir(data_dir, conference_id).parent.parent / "essays" / conference_id


def essay_path(data_dir: Path, conference_id: str, stored_name: str) -> Path:
    if len(stored_name) != 32 or not all(c in "0123456789abcdef" for c in stored_name):
        raise FileNotFoundError(stored_name)
    return essays_dir(data_dir, conference_id) / stored_name


def _pdf_text(path: Path) -> str:
    from pypdf import PdfReader

    reader = PdfReader(path)
    return "\n".join((page.extract_text() or "") for page in reader.pages[:MAX_PDF_PAGES])


def _xml_text(path: Path, member: str, paragraph_tags: tuple[str, ...]) -> str:
    with zipfile.ZipFile(path) as archive, archive.open(member) as xml:
        data = xml.read(MAX_XML_BYTES + 1)
    if len(data) > MAX_XML_BYTES:
        data = data[:0]
    root = ElementTree.fromstring(data)
    paragraphs = (el for el in root.iter() if el.tag in paragraph_tags)
    return "\n".join("".join(p.itertext()).strip() for p in paragraphs).strip()


def extract_text(path: Path, ext: str) -> str:
    """The document's text ("" when it cannot be read), at most ``MAX_TEXT_CHARS``."""
    try:
        if ext == "pdf":
            text = _pdf_text(path)
        elif ext == "docx":
            text = _xml_text(path, "word/document.xml", (_W + "p",))
        elif ext == "odt":
            text = _xml_text(path, "content.xml", (_ODF_TEXT + "p", _ODF_TEXT + "h"))
        else:
            return ""
    except Exception as exc:  # any damaged document: keep the file, go without its text
        log.info("no text extracted from an essay .%s file: %s", ext, exc)
        return ""
    return text.strip()[:MAX_TEXT_CHARS]


async def store_essay_file(
    data_dir: Path, conference_id: str, source: BinaryIO, filename: str | None, declared: str | None,
    max_bytes: int,
) -> StoredFile:
    """Check (415 type, 413 size, 400 empty: :class:`MaterialRejected`) and store one essay file;
    on a refusal nothing is left on disk."""
    name = sanitise_filename(filename)
    ext = extension_of(name)
    if ext not in ESSAY_EXTENSIONS:
        raise MaterialRejected(415, f"an essay must be a PDF, DOCX or ODT file, not '.{ext or '?'}'")
    kind = check_type(name, declared)
    stored_name = secrets.token_hex(16)
    path = essays_dir(data_dir, conference_id) / stored_name
    size, _ = await asyncio.to_thread(store_checked, source, path, ext, kind, max_bytes)
    text = await asyncio.to_thread(extract_text, path, ext)
    return StoredFile(name, stored_name, kind.content_type, size, text)


def remove_file(data_dir: Path, conference_id: str, stored_name: str | None) -> None:
    if stored_name:
        essay_path(data_dir, conference_id, stored_name).unlink(missing_ok=True)
