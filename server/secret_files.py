"""Secrets kept in the data dir (admin token, link signing key): owner-only from the first byte.

Writing the file and then ``chmod``-ing it leaves a moment in which it has the umask's mode (often
0644) and another local user can open it; ``os.open`` with mode 0600 creates it private.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

MODE = 0o600


def write_secret_file(path: Path, data: bytes) -> None:
    """Create ``path`` holding ``data`` with mode 0600, atomically (a temporary file renamed over it)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # left by a crash; O_EXCL below refuses to reuse a file someone else may hold open
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, MODE)
    try:
        os.fchmod(fd, MODE)  # O_CREAT's mode is filtered by the umask; make it exactly 0600
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
