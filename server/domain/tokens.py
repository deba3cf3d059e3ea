"""Access tokens: unguessable bearer secrets scoped to one conference and one role.

Only the SHA-256 of a token is stored, so a leaked database does not leak credentials.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import AccessToken

ROLES = ("organiser", "speaker", "point", "viewer", "member")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the admin (all conferences) or a token holder in one conference."""

    role: str
    conference_id: str | None = None
    token_id: str | None = None
    name: str = ""
    subject_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_token(
    db: AsyncSession,
    conference_id: str,
    role: str,
    name: str = "",
    subject_id: str | None = None,
) -> tuple[AccessToken, str]:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    secret = secrets.token_urlsafe(24)
    row = AccessToken(
        conference_id=conference_id,
        role=role,
        name=name,
        token_hash=hash_token(secret),
        subject_id=subject_id,
    )
    db.add(row)
    await db.flush()
    return row, secret


_RESOLVE = select(
    AccessToken.id,
    AccessToken.role,
    AccessToken.conference_id,
    AccessToken.name,
    AccessToken.subject_id,
    AccessToken.revoked,
)


async def resolve_token(db: AsyncSession, secret: str) -> Principal | None:
    # Columns, not the ORM entity: every authenticated request runs this, and building and
    # tracking an instance cost more than the query on SQLite.
    row = (await db.execute(_RESOLVE.where(AccessToken.token_hash == hash_token(secret)))).one_or_none()
    if row is None or row.revoked:
        return None
    return Principal(
        role=row.role,
        conference_id=row.conference_id,
        token_id=row.id,
        name=row.name,
        subject_id=row.subject_id,
    )
