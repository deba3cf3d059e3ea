"""Progress bars for the CLI's uploads (materials, CSV imports): a large file on a slow link shows how far
it has gone instead of a silent wait. Drawn on stderr and only on a terminal, so piped output and
scripts see exactly what they saw before."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

CHUNK = 64 * 1024


@contextmanager
def upload_progress(label: str, size: int) -> Iterator[Callable[[int], None]]:
    """A bar of ``size`` bytes named ``label``; yields the function that advances it. Once every byte
    is sent the bar says the server is working on it (an import checks every row before answering)."""
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=console, disable=not console.is_terminal, transient=False,
    ) as progress:
        task = progress.add_task(label, total=size)
        done = 0

        def advance(sent: int) -> None:
            nonlocal done
            done += sent
            progress.update(task, completed=done)
            if done >= size:
                progress.update(task, description=f"{label}: sent, the server is working on it")

        yield advance


def file_chunks(path: Path, advance: Callable[[int], None]) -> Iterator[bytes]:
    """The file's bytes in chunks, each counted once it is handed to the connection."""
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk
            advance(len(chunk))


class CountingReader:
    """A file for a multipart upload that counts what is read from it (httpx reads it in chunks and
    learns its length from ``fileno``)."""

    def __init__(self, fh: BinaryIO, advance: Callable[[int], None]) -> None:
        self._fh = fh
        self._advance = advance

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self._advance(len(data))
        return data

    def fileno(self) -> int:
        return self._fh.fileno()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()
