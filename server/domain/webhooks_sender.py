"""Delivering webhooks off the media path: a bounded queue in front, a sender task behind it.

The bus handler only puts the event in a queue (``submit`` never waits), so a slow or failing
receiver cannot hold up whoever published the event, nor the event loop that relays media. The
sender writes each event's deliveries to the log, then POSTs each one in a task of its own: a
failure the receiver may get over (no answer, 5xx, 408, 429) is retried after a wait that doubles
each time (``RetryPolicy``; a longer Retry-After is honoured), up to the attempt limit. Each
receiver URL has its own small lane of concurrent requests, so one receiver that hangs does not
delay the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db.models import utcnow
from server.domain import webhooks_log as delivery_log
from server.domain.webhooks import WebhookEvent
from server.domain.webhooks_log import Outcome
from server.domain.webhooks_signing import SIGNATURE_HEADER, load_secret, sign
from server.settings import Settings

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000  # events waiting to be logged; beyond, new ones are dropped (and counted)
LANE_SIZE = 4  # concurrent requests per receiver URL
BATCH = 100  # events logged per transaction when they come in a burst
PRUNE_EVERY = 3600.0
USER_AGENT = "DiemCau-Webhooks/1"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    first_delay: float = 2.0
    max_delay: float = 600.0

    def delay(self, attempts_made: int, retry_after: float | None = None) -> float:
        """Seconds before the next attempt: ``first_delay`` after the first, doubling after each."""
        wait = min(self.max_delay, self.first_delay * 2 ** (attempts_made - 1))
        if retry_after is not None:
            wait = min(self.max_delay, max(wait, retry_after))
        return wait


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header: seconds, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, (when - utcnow()).total_seconds())
    return None


class WebhookSender:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        urls: Sequence[str],
        secret: str,
        policy: RetryPolicy = RetryPolicy(),
        timeout: float = 5.0,
        log_days: float = 30.0,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.urls = list(urls)
        self.secret = secret
        self.policy = policy
        self.timeout = timeout
        self.log_days = log_days
        self.queue: asyncio.Queue[WebhookEvent | None] = asyncio.Queue(QUEUE_SIZE)
        self.counts: Counter[str] = Counter()  # submitted, dropped, and attempts by outcome
        self._lanes: dict[str, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(LANE_SIZE))
        self._deliveries: set[asyncio.Task] = set()
        self._tasks: list[asyncio.Task] = []
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def from_settings(cls, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> WebhookSender:
        """The sender as configured; without URLs it is idle (and no secret is generated)."""
        secret = load_secret(settings.webhook_secret, settings.data_dir) if settings.webhook_urls else ""
        policy = RetryPolicy(settings.webhook_max_attempts, settings.webhook_retry_seconds,
                             settings.webhook_retry_max_seconds)
        return cls(sessionmaker, settings.webhook_urls, secret, policy, settings.webhook_timeout_seconds,
                   settings.webhook_log_days)

    @property
    def enabled(self) -> bool:
        return bool(self.urls)

    # --- life ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Take up the deliveries a previous run left unfinished, then serve the queue."""
        if not self.enabled:
            return
        self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False,
                                         timeout=httpx.Timeout(self.timeout),
                                         headers={"User-Agent": USER_AGENT})
        async with self.sessionmaker() as db:
            await delivery_log.prune(db, utcnow() - dt.timedelta(days=self.log_days))
            left = await delivery_log.unfinished(db)
            for row in [r for r in left if r.url not in self.urls]:  # the receiver was removed meanwhile
                row.status, row.next_attempt_at = "failed", None
                row.last_error, row.updated_at = "receiver no longer configured", utcnow()
            left = [r for r in left if r.url in self.urls]
            await db.commit()
        now = utcnow()
        for row in left:
            wait = (row.next_attempt_at - now).total_seconds() if row.next_attempt_at else 0.0
            self._spawn(row.id, row.url, row.body.encode(), row.event_type, row.attempts, max(0.0, wait))
        if left:
            log.info("webhooks: %d unfinished deliveries taken up again", len(left))
        self._tasks = [asyncio.ensure_future(self._intake()), asyncio.ensure_future(self._prune_loop())]

    async def stop(self, drain_seconds: float = 3.0) -> None:
        """Log what is still queued (briefly), then stop; unfinished deliveries wait in the log."""
        if not self._tasks:
            return
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._tasks[0]), drain_seconds)
        for task in [*self._tasks, *self._deliveries]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._deliveries, return_exceptions=True)
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()

    # --- in -----------------------------------------------------------------------------------------
    def submit(self, event: WebhookEvent) -> None:
        """Queue ``event`` for every receiver; never waits (a full queue drops it, logged and counted)."""
        if not self.enabled or not self._tasks:
            return
        try:
            self.queue.put_nowait(event)
            self.counts["submitted"] += 1
        except asyncio.QueueFull:
            self.counts["dropped"] += 1
            log.warning("webhooks: queue full, %s of conference %s dropped", event.type, event.conference_id)

    async def _intake(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            events = [e for e in batch if e is not None]
            try:
                async with self.sessionmaker() as db:
                    rows = [r for event in events for r in delivery_log.record_event(db, event, self.urls)]
                    await db.commit()
            except Exception:
                log.exception("webhooks: %d event(s) could not be logged; not delivered", len(events))
                rows = []
            for row in rows:
                self._spawn(row.id, row.url, row.body.encode(), row.event_type, 0, 0.0)
            if None in batch:
                return

    # --- out ----------------------------------------------------------------------------------------
    def _spawn(self, delivery_id: str, url: str, body: bytes, event_type: str, made: int, wait: float) -> None:
        task = asyncio.ensure_future(self._deliver(delivery_id, url, body, event_type, made, wait))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, delivery_id: str, url: str, body: bytes, event_type: str, made: int,
                       wait: float) -> None:
        """Attempts until one is answered 2xx, the failure is not worth retrying, or the limit."""
        while made < self.policy.max_attempts:
            if wait > 0:
                await asyncio.sleep(wait)
            async with self._lanes[url]:
                outcome = await self._post(url, body, event_type, delivery_id, made + 1)
            made += 1
            again = not outcome.ok and outcome.retriable and made < self.policy.max_attempts
            wait = self.policy.delay(made, outcome.retry_after) if again else 0.0
            self.counts["delivered" if outcome.ok else "retried" if again else "failed"] += 1
            next_at = utcnow() + dt.timedelta(seconds=wait) if again else None
            try:
                async with self.sessionmaker() as db:
                    await delivery_log.record_attempt(db, delivery_id, made, outcome, next_at)
                    await db.commit()
            except Exception:
                log.exception("webhooks: attempt %d of delivery %s not logged", made, delivery_id)
            if not again:
                return

    async def _post(self, url: str, body: bytes, event_type: str, delivery_id: str, number: int) -> Outcome:
        assert self._client is not None
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            SIGNATURE_HEADER: sign(self.secret, body),
            "X-Diemcau-Event": event_type,
            "X-Diemcau-Delivery": delivery_id,
            "X-Diemcau-Attempt": str(number),
        }
        started, t0 = utcnow(), time.monotonic()
        try:
            # the whole exchange is bounded: httpx's timeouts are per phase, a trickling answer outlasts them
            response = await asyncio.wait_for(self._client.post(url, content=body, headers=headers), self.timeout)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            return Outcome(started, _ms(t0), error=f"no answer within {self.timeout:g} s")
        except httpx.HTTPError as exc:
            return Outcome(started, _ms(t0), error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        retry_after = retry_after_seconds(response.headers.get("retry-after")) if response.status_code in (429, 503) else None
        return Outcome(started, _ms(t0), status_code=response.status_code, retry_after=retry_after)

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_EVERY)
            try:
                async with self.sessionmaker() as db:
                    await delivery_log.prune(db, utcnow() - dt.timedelta(days=self.log_days))
                    await db.commit()
            except Exception:
                log.exception("webhooks: pruning the delivery log failed")

    def stats(self) -> dict[str, Any]:
        return {"queued": self.queue.qsize(), "in_flight": len(self._deliveries), **self.counts}


def _ms(t0: float) -> float:
    return (time.monotonic() - t0) * 1000
