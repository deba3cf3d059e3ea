"""Personal access tokens for connection points and members, issued in bulk.

A point's operator token has role ``point`` and ``subject_id`` = the point id, a member's has role
``member`` and ``subject_id`` = the member id; that is how attendance sessions map to who attended.
Issuing again revokes the previous token of the same subject, so a leaked link can be replaced.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import AccessToken, new_id, utcnow
from server.domain.tokens import hash_token, new_secret

CHUNK = 500


@dataclass(frozen=True)
class IssuedToken:
    subject_id: str
    name: str
    token_id: str
    secret: str


async def revoke_subject_tokens(
    db: AsyncSession, conference_id: str, role: str, subject_ids: list[str]
) -> None:
    for start in range(0, len(subject_ids), CHUNK):
        await db.execute(
            update(AccessToken)
            .where(
                AccessToken.conference_id == conference_id,
                AccessToken.role == role,
                AccessToken.subject_id.in_(subject_ids[start : start + CHUNK]),
            )
            .values(revoked=1, revoked_at=utcnow())
        )


async def issue_subject_tokens(
    db: AsyncSession,
    conference_id: str,
    role: str,
    subjects: Iterable[tuple[str, str]],
    revoke_existing: bool = True,
) -> list[IssuedToken]:
    """Issue one token per ``(subject_id, name)``; the secrets are returned once and never stored."""
    subjects = list(subjects)
    if revoke_existing:
        await revoke_subject_tokens(db, conference_id, role, [s for s, _ in subjects])
    issued: list[IssuedToken] = []
    rows: list[AccessToken] = []
    for subject_id, name in subjects:
        secret = new_secret()
        row = AccessToken(
            id=new_id(),
            conference_id=conference_id,
            role=role,
            name=name[:200],
            token_hash=hash_token(secret),
            subject_id=subject_id,
        )
        rows.append(row)
        issued.append(IssuedToken(subject_id, name, row.id, secret))
    db.add_all(rows)
    await db.flush()
    return issued
