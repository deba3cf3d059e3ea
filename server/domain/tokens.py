"""Access tokens: unguessable bearer secrets scoped to one conference and one role.

Only the SHA-256 of a token is stored, so a leaked database does not leak credentials. A token ends
when it is revoked or when it expires: at its own ``expires_at``, or else its role's default lifetime
(``settings.token_lifetime_days``) after its creation, so shortening a default also ends old tokens.
Every route resolves tokens here, so an ended token is refused everywhere at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import AccessToken, utcnow
from server.domain.conferences import as_utc
from server.domain.rows import conference_row

ROLES = ("organiser", "speaker", "point", "viewer", "member", "grader", "supervisor")
CHUNK = 500  # ids per IN (...) query: SQLite allows 999 bound parameters

Lifetimes = Mapping[str, float]  # role -> days; 0 or missing = no default expiry


class TokenNotFound(LookupError):
    pass


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


def expiry(
    role: str, created_at: dt.datetime | None, expires_at: dt.datetime | None, lifetimes: Lifetimes
) -> dt.datetime | None:
    """When a token stops working: its own expiry, else its role's default lifetime; None = never."""
    if expires_at is not None:
        return as_utc(expires_at)
    days = lifetimes.get(role, 0)
    if not days or created_at is None:
        return None
    return as_utc(created_at) + dt.timedelta(days=days)  # type: ignore[operator]


def is_dead(
    revoked: int, role: str, created_at: dt.datetime | None, expires_at: dt.datetime | None,
    lifetimes: Lifetimes, now: dt.datetime,
) -> bool:
    end = expiry(role, created_at, expires_at, lifetimes)
    return bool(revoked) or (end is not None and end <= now)


FIRST_CHARACTERS = string.ascii_letters + string.digits


def new_secret() -> str:
    """A token's secret (URL-safe base64), never starting with ``-``: CSV exports of tokens and links
    put an apostrophe before a cell that starts like a formula (server.domain.csvio), and a token
    copied from such a cell would not work (1 token in 64 before this)."""
    secret = secrets.token_urlsafe(24)
    return secrets.choice(FIRST_CHARACTERS) + secret[1:] if secret[0] == "-" else secret


async def issue_token(
    db: AsyncSession,
    conference_id: str,
    role: str,
    name: str = "",
    subject_id: str | None = None,
    expires_at: dt.datetime | None = None,
) -> tuple[AccessToken, str]:
    """A new token; ``expires_at`` None = the role's default lifetime. The secret is returned once."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    secret = new_secret()
    row = AccessToken(
        conference_id=conference_id,
        role=role,
        name=name,
        token_hash=hash_token(secret),
        subject_id=subject_id,
        created_at=utcnow(),
        expires_at=as_utc(expires_at),
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
    AccessToken.created_at,
    AccessToken.expires_at,
)


async def resolve_token(
    db: AsyncSession, secret: str, lifetimes: Lifetimes, now: dt.datetime | None = None
) -> Principal | None:
    """The holder of a live token; None for an unknown, revoked or expired one."""
    # Columns, not the ORM entity: every authenticated request runs this, and building and
    # tracking an instance cost more than the query on SQLite.
    row = (await db.execute(_RESOLVE.where(AccessToken.token_hash == hash_token(secret)))).one_or_none()
    if row is None or is_dead(row.revoked, row.role, row.created_at, row.expires_at, lifetimes, now or utcnow()):
        return None
    return Principal(
        role=row.role,
        conference_id=row.conference_id,
        token_id=row.id,
        name=row.name,
        subject_id=row.subject_id,
    )


async def list_tokens(db: AsyncSession, conference_id: str) -> list[AccessToken]:
    query = select(AccessToken).where(AccessToken.conference_id == conference_id)
    return list((await db.execute(query.order_by(AccessToken.created_at, AccessToken.id))).scalars())


async def get_token(db: AsyncSession, conference_id: str, token_id: str) -> AccessToken:
    return await conference_row(db, AccessToken, token_id, conference_id, TokenNotFound)


async def revoke_token(db: AsyncSession, row: AccessToken) -> AccessToken:
    """Revoke one token (again: no change, the first revocation time is kept)."""
    if not row.revoked:
        row.revoked = 1
        row.revoked_at = utcnow()
        await db.flush()
    return row


async def revoke_subject(db: AsyncSession, conference_id: str, role: str, subject_id: str) -> None:
    """Revoke every token of a point or member, e.g. when it is deleted."""
    await db.execute(
        update(AccessToken)
        .where(
            AccessToken.conference_id == conference_id,
            AccessToken.role == role,
            AccessToken.subject_id == subject_id,
            AccessToken.revoked == 0,
        )
        .values(revoked=1, revoked_at=utcnow())
    )


async def dead_tokens(
    db: AsyncSession, token_ids: Iterable[str], lifetimes: Lifetimes, now: dt.datetime | None = None
) -> set[str]:
    """Of ``token_ids``, those that no longer work: revoked, expired or gone (conference deleted)."""
    wanted = sorted(set(token_ids))
    now = now or utcnow()
    alive: set[str] = set()
    for start in range(0, len(wanted), CHUNK):
        query = select(
            AccessToken.id, AccessToken.role, AccessToken.revoked, AccessToken.created_at, AccessToken.expires_at
        ).where(AccessToken.id.in_(wanted[start : start + CHUNK]))
        for row in await db.execute(query):
            if not is_dead(row.revoked, row.role, row.created_at, row.expires_at, lifetimes, now):
                alive.add(row.id)
    return set(wanted) - alive
