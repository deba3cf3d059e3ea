"""Signed, expiring links for HLS files and downloads (``?exp=…&sig=…``).

Players fetch segments without an Authorization header (hls.js, Safari, smart TVs), and a viewer's
token should not have to appear in every URL it shares. The server signs a *scope* (one recording,
or one conference's live playlist) with a key kept in the data dir; checking a signature needs no
database. Expiry is rounded up to ``BUCKET`` so URLs stay stable (cacheable) for a while.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from pathlib import Path

from server.secret_files import write_secret_file

BUCKET = 600


def recording_scope(conference_id: str, recording_id: str) -> str:
    return f"rec:{conference_id}/{recording_id}"


def live_scope(conference_id: str) -> str:
    return f"live:{conference_id}"


class LinkSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def load(cls, data_dir: Path) -> LinkSigner:
        """The data dir's signing key, created on first use (so links survive restarts)."""
        path = data_dir / "link_signing_key"
        if path.is_file() and len(path.read_bytes().strip()) >= 32:
            return cls(path.read_bytes().strip())
        key = secrets.token_hex(32).encode()
        write_secret_file(path, key)
        return cls(key)

    def _mac(self, scope: str, exp: int) -> str:
        return hmac.new(self._key, f"{scope}|{exp}".encode(), hashlib.sha256).hexdigest()[:32]

    def sign(self, scope: str, ttl: float, now: float | None = None) -> str:
        """Query string (without ``?``) granting ``scope`` for at least ``ttl`` seconds."""
        now = time.time() if now is None else now
        exp = int(math.ceil((now + ttl) / BUCKET) * BUCKET)
        return f"exp={exp}&sig={self._mac(scope, exp)}"

    def verify(self, scope: str, exp: str | None, sig: str | None, now: float | None = None) -> bool:
        if not exp or not sig or not exp.isdigit():
            return False
        now = time.time() if now is None else now
        if int(exp) < now:
            return False
        return hmac.compare_digest(self._mac(scope, int(exp)), sig)
