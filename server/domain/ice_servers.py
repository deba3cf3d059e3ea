"""The ICE servers given to clients (WHIP/WHEP ``Link`` headers) and to our own peer connections.

With ``turn_secret`` set, every TURN entry of ``ice_servers`` without a fixed username gets
short-lived credentials (coturn ``use-auth-secret``), named after the token they were issued to so
coturn's log shows whose relay it was. Only authenticated requests receive any ICE server.
"""

from __future__ import annotations

from typing import Any

from media.transport.turn_rest import rest_credentials
from server.settings import IceServer, Settings


def _uses_secret(server: IceServer, settings: Settings) -> bool:
    is_turn = server.urls.split(":", 1)[0].lower() in ("turn", "turns")
    return bool(settings.turn_secret) and is_turn and not server.username


def for_client(settings: Settings, user: str, now: float | None = None) -> list[dict[str, str | None]]:
    """``urls``/``username``/``credential`` per server for one client (``user``: its token id)."""
    out: list[dict[str, str | None]] = []
    for server in settings.ice_servers:
        if _uses_secret(server, settings):
            username, credential = rest_credentials(
                settings.turn_secret, settings.turn_credential_ttl, user, now  # type: ignore[arg-type]
            )
            out.append({"urls": server.urls, "username": username, "credential": credential})
        else:
            out.append({"urls": server.urls, "username": server.username, "credential": server.credential})
    return out


def for_engine(settings: Settings) -> list[dict[str, Any]]:
    """The media engine's entries: a TURN entry under the secret carries it (media.transport.ice makes the
    credentials per peer connection, so a server running for weeks never holds expired ones)."""
    out: list[dict[str, Any]] = []
    for server in settings.ice_servers:
        entry: dict[str, Any] = server.model_dump()
        if _uses_secret(server, settings):
            entry.update(secret=settings.turn_secret, ttl=settings.turn_credential_ttl)
        out.append(entry)
    return out
