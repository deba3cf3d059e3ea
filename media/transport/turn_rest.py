"""Short-lived TURN credentials (the "TURN REST API" of coturn's ``use-auth-secret``).

The username is ``<expiry unix time>:<user>`` and the password base64(HMAC-SHA1(secret, username));
coturn recomputes the password from the username with the shared ``static-auth-secret`` and refuses
it once the time has passed. A leaked credential thus ends by itself, and no password is stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time


def rest_credentials(secret: str, ttl: float, user: str, now: float | None = None) -> tuple[str, str]:
    """(username, password) valid for ``ttl`` seconds from ``now``."""
    expiry = int((time.time() if now is None else now) + ttl)
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def credentials(server: dict, user: str) -> tuple[str | None, str | None]:
    """An ICE server entry's (username, credential): fresh ones when it carries a ``secret``."""
    secret = server.get("secret")
    if secret:
        return rest_credentials(secret, float(server.get("ttl") or 3600), user)
    return server.get("username"), server.get("credential")
