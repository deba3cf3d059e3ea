"""Caps on concurrent WHEP sessions: per token (a leaked point link cannot feed a crowd) and per conference.

A place is taken before the offer is read and negotiated, and counted as pending until the media engine
holds the consumer (``subscribe`` adds it before returning); from then on the consumer itself is counted,
until it closes. Check and take happen without an await between them, so simultaneous requests with one
token cannot all pass the check. The admin token is capped only by the conference's limit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import HTTPException, status

from server.domain.tokens import Principal

RETRY_AFTER_SECONDS = 10  # a deleted session frees its place at once; one whose peer vanished within ~30 s


class WhepPlaces:
    def __init__(self, per_token: int, per_conference: int) -> None:
        self.per_token = per_token  # 0 = no cap
        self.per_conference = per_conference  # 0 = no cap
        self._pending_token: Counter[str] = Counter()
        self._pending_conference: Counter[str] = Counter()

    @contextmanager
    def hold(self, media: Any, principal: Principal, conference_id: str) -> Iterator[None]:
        """Hold a place while a WHEP request negotiates; 429 with ``Retry-After`` when none is free."""
        token = None if principal.is_admin else principal.token_id
        if self.per_token and token is not None:
            owned = self._pending_token[token] + sum(
                1 for c in media.consumers.values() if getattr(c, "owner", None) == token
            )
            if owned >= self.per_token:
                raise too_many(
                    f"this token already has {owned} WHEP sessions open (limit {self.per_token}); "
                    "end one (DELETE its Location) or wait for a stale one to time out"
                )
        if self.per_conference:
            joined = self._pending_conference[conference_id] + media.consumer_count(conference_id)
            if joined >= self.per_conference:
                raise too_many(f"this conference has {joined} WHEP sessions (limit {self.per_conference})")
        if token is not None:
            self._pending_token[token] += 1
        self._pending_conference[conference_id] += 1
        try:
            yield
        finally:
            if token is not None:
                _decrement(self._pending_token, token)
            _decrement(self._pending_conference, conference_id)


def _decrement(counter: Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


def too_many(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS, detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )
