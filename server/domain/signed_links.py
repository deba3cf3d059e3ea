"""Signed, expiring links for HLS files and downloads (``?exp=…&sig=…``).

Players fetch segments without an Authorization header (hls.js, Safari, smart TVs), and a viewer's
token should not have to appear in every URL it shares. The server signs a *scope* with a key kept
in the data dir. There are four scopes, so one link never opens more than it was made for: the
conference's live playlist and the segments in its window (``live``), the segments in its window
alone (``live-segments``: what a live playlist's segment URIs carry, see :meth:`LinkSigner.shared`),
one recording's playlist and segments (``replay``), and one recording's MP4 (``download``).

A signature names the token it was made for (``sig=<token id>.<mac>``; the admin's have no id): the
link works only while that token does (:class:`LinkHolders`), so revoking or expiring a token ends
its links too. A request that arrives on a signature is answered with child URIs carrying the same
expiry, so a link never renews itself. Expiry is rounded up to ``BUCKET`` so URLs stay stable
(cacheable) for a while.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import AccessToken, utcnow
from server.domain.tokens import expiry
from server.secret_files import write_secret_file

BUCKET = 600


def live_scope(conference_id: str) -> str:
    return f"live:{conference_id}"


def live_segments_scope(conference_id: str) -> str:
    return f"live-segments:{conference_id}"


def replay_scope(conference_id: str, recording_id: str) -> str:
    return f"replay:{conference_id}/{recording_id}"


def download_scope(conference_id: str, recording_id: str) -> str:
    return f"download:{conference_id}/{recording_id}"


@dataclass(frozen=True)
class Grant:
    """What a valid signature grants: ``scope`` until ``exp`` (unix seconds), on behalf of
    ``token_id`` (None: a link the admin made)."""

    scope: str
    exp: int
    token_id: str | None


class LinkSigner:
    """HMAC-SHA256 signatures over ``scope|exp|token id`` with the data dir's key."""

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

    def _mac(self, scope: str, exp: int, token_id: str | None) -> str:
        message = f"{scope}|{exp}|{token_id or ''}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def query(self, grant: Grant) -> str:
        """The query string (without ``?``) carrying ``grant``."""
        mac = self._mac(grant.scope, grant.exp, grant.token_id)
        return f"exp={grant.exp}&sig={grant.token_id}.{mac}" if grant.token_id else f"exp={grant.exp}&sig={mac}"

    @staticmethod
    def grant(scope: str, ttl: float, token_id: str | None, now: float | None = None) -> Grant:
        """``scope`` for at least ``ttl`` seconds (expiry rounded up to ``BUCKET``) while ``token_id`` lives."""
        now = time.time() if now is None else now
        return Grant(scope, int(math.ceil((now + ttl) / BUCKET) * BUCKET), token_id)

    @staticmethod
    def shared(scope: str, ttl: float, not_after: int, now: float | None = None) -> Grant:
        """``scope`` for everyone, between ``ttl``/2 and ``ttl`` seconds (expiry rounded up to ``ttl``/2,
        never after ``not_after``: the link it is handed out on). A live playlist's segment URIs carry
        it: the same for every viewer, so a cache in front asks the server about a segment once, not
        once per viewer, at the cost of a revoked viewer's keeping its segments for up to ``ttl``."""
        now = time.time() if now is None else now
        half = max(1, int(ttl / 2))
        return Grant(scope, min(not_after, int(math.ceil((now + half) / half) * half)), None)

    def sign(self, scope: str, ttl: float, token_id: str | None, now: float | None = None) -> str:
        """Query string granting ``scope`` for at least ``ttl`` seconds while ``token_id`` lives."""
        return self.query(self.grant(scope, ttl, token_id, now))

    def verify(self, scope: str, exp: str | None, sig: str | None, now: float | None = None) -> Grant | None:
        """The grant of a genuine, unexpired signature for ``scope``; None otherwise."""
        # isascii: "²".isdigit() is true but int("²") raises; bytes: compare_digest refuses non-ASCII str.
        if not exp or not sig or not exp.isascii() or not exp.isdigit() or len(exp) > 12:
            return None
        now = time.time() if now is None else now
        if int(exp) < now:
            return None
        token_id, _, mac = sig.rpartition(".")
        grant = Grant(scope, int(exp), token_id or None)
        if not hmac.compare_digest(self._mac(scope, grant.exp, grant.token_id).encode(), mac.encode()):
            return None
        return grant


@dataclass(frozen=True)
class Holder:
    """The live token a link was made for: who is fetching, for replay accounting."""

    token_id: str
    conference_id: str
    role: str
    subject_id: str | None
    ends_at: dt.datetime | None  # the token's expiry (None: never); checked on every use

    def alive(self, now: dt.datetime) -> bool:
        return self.ends_at is None or self.ends_at > now


_HOLDER = select(
    AccessToken.id,
    AccessToken.conference_id,
    AccessToken.role,
    AccessToken.subject_id,
    AccessToken.revoked,
    AccessToken.created_at,
    AccessToken.expires_at,
)


class LinkHolders:
    """Whether the token behind a signed link still works, cached for ``ttl`` seconds (the server's
    ``token_check_seconds``): players fetch a playlist every couple of seconds and segments in
    between, one database read per link holder per ``ttl`` is enough, and it bounds how long a
    revoked token's links outlive it. An expiry is checked exactly, on every use."""

    def __init__(self, lifetimes: Mapping[str, float], ttl: float) -> None:
        self.lifetimes = lifetimes
        self.ttl = ttl
        self._cache: dict[str, tuple[Holder | None, float]] = {}

    async def get(self, db: AsyncSession, token_id: str, now: dt.datetime | None = None) -> Holder | None:
        """The holder while the token is neither revoked (seen within ``ttl``) nor expired (exactly)."""
        now = now or utcnow()
        clock = time.monotonic()
        cached = self._cache.get(token_id)
        if cached is not None and cached[1] > clock:
            holder = cached[0]
        else:
            row = (await db.execute(_HOLDER.where(AccessToken.id == token_id))).one_or_none()
            holder = None
            if row is not None and not row.revoked:
                ends = expiry(row.role, row.created_at, row.expires_at, self.lifetimes)
                holder = Holder(row.id, row.conference_id, row.role, row.subject_id, ends)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[token_id] = (holder, clock + self.ttl)
        return holder if holder is not None and holder.alive(now) else None
