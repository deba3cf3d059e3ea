"""Webhook signatures: HMAC-SHA256 of the exact body, sent as ``X-Diemcau-Signature: sha256=<hex>``,
so a receiver can tell our POSTs from anyone else's (it recomputes the HMAC with the shared secret
over the raw bytes it received, before parsing them)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from server.secret_files import write_secret_file

SIGNATURE_HEADER = "X-Diemcau-Signature"
SECRET_FILE = "webhook_secret"


def sign(secret: str, body: bytes) -> str:
    """The header's value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """What a receiver does: a constant-time comparison with the signature it computes."""
    return header is not None and hmac.compare_digest(sign(secret, body), header.strip())


def load_secret(configured: str | None, data_dir: Path) -> str:
    """The configured secret, else the one generated at the first start and kept (mode 0600) in the
    data dir, so receivers configured with it keep verifying after a restart."""
    if configured:
        return configured
    path = data_dir / SECRET_FILE
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    secret = secrets.token_urlsafe(32)
    data_dir.mkdir(parents=True, exist_ok=True)
    write_secret_file(path, (secret + "\n").encode())
    return secret
