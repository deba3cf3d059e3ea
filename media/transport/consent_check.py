"""ConsentCheck: our ICE consent checks towards a connected peer, packed from bytes, on one timer.

RFC 7675: a sender keeps sending only while its peer keeps consenting, which it shows by
answering a STUN Binding request every few seconds. aioice runs a task per connection that builds
each check as message objects, serialises them, runs a ``Transaction`` (its own timer and future)
and parses the answer into objects again. With hundreds of points these checks and their answers
were about a third of an idle media worker's Python time (py-spy, N=250). Here a check is packed
from the connection's fixed attributes, sent on the pair's socket, and its answer is recognised by
its transaction id in the socket's datagram callback; every connection's checks and retries of a
process run from one timer (media.core.job_schedule), like the sender reports (media.egress.sender_report).

The policy is media.transport.ice.patient_consent's: a check every 4-6 s, retransmitted after RTO and 2*RTO,
counted lost 7*RTO (3.5 s) after it was first sent; four lost in a row (about 35 s without an
answer) close the connection, as aioice would. The bytes are what aioice's ``build_request`` and
``add_message_integrity`` make (tests/test_consent_check.py compares them).
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
from typing import Any

import aioice.ice
from aioice.candidate import candidate_priority
from aioice.stun import COOKIE

from media.core import job_schedule
from media.transport.consent_answer import (ATTR, BINDING_REQUEST, BINDING_SUCCESS, HEADER, MESSAGE_INTEGRITY, PRIORITY, USERNAME,
                                  integrity_ok, signed_message)
from media.core.job_schedule import JobSchedule

log = logging.getLogger(__name__)

ICE_CONTROLLED, ICE_CONTROLLING = 0x8029, 0x802A
BINDING_ERROR = 0x0111
RTO = 0.5  # seconds to the first retransmission (aioice's RETRY_RTO), doubling after
RETRANSMISSIONS = 2
FAILURES_ALLOWED = 4


def _attribute(kind: int, value: bytes) -> bytes:
    return ATTR.pack(kind, len(value)) + value + b"\x00" * (-len(value) % 4)


class ConsentCheck:
    """One connection's checks: what to send, which transaction is outstanding, how many failed."""

    __slots__ = ("connection", "component", "_remote", "_sendto", "_key", "_body", "pending", "tries",
                 "failures", "sent", "answered", "lost", "active")

    def __init__(self, connection: Any, pair: Any) -> None:
        self.connection = connection
        self.component = pair.component
        self._remote = tuple(pair.remote_addr[:2])
        self._sendto = pair.protocol.transport.sendto
        self._key = connection.remote_password.encode("utf8")
        role = ICE_CONTROLLING if connection.ice_controlling else ICE_CONTROLLED
        username = f"{connection.remote_username}:{connection.local_username}".encode()
        self._body = (  # the attributes before MESSAGE-INTEGRITY, in aioice's order
            _attribute(USERNAME, username)
            + _attribute(PRIORITY, struct.pack("!I", candidate_priority(pair.component, "prflx")))
            + _attribute(role, struct.pack("!Q", connection._tie_breaker))
        )
        self.pending: bytes | None = None  # the transaction id of the check awaiting its answer
        self.tries = 0  # sends of the pending check
        self.failures = 0  # checks lost in a row
        self.sent = self.answered = self.lost = 0
        self.active = True

    def request(self, transaction_id: bytes) -> bytes:
        return signed_message(BINDING_REQUEST, transaction_id, self._body, self._key)

    def response(self, data: bytes, addr: tuple) -> bool:
        """True if ``data`` answers our pending check (then consumed: an authentic success counts,
        an error response counts as a lost check, a forged one is ignored); False: not ours."""
        pending = self.pending
        if pending is None or len(data) < 20 or data[8:20] != pending:
            return False
        kind, length, cookie, _ = HEADER.unpack_from(data)
        if cookie != COOKIE or length + 20 != len(data) or (addr[0], addr[1]) != self._remote:
            return False
        if kind == BINDING_ERROR:
            self._lost()
            return True
        if kind != BINDING_SUCCESS or not self._authentic(data):
            return True  # aioice ignores it too and keeps waiting
        self.pending = None
        self.failures = 0
        self.answered += 1
        return True

    def _authentic(self, data: bytes) -> bool:
        pos, end = 20, len(data)
        while pos + 4 <= end:
            kind, size = ATTR.unpack_from(data, pos)
            if kind == MESSAGE_INTEGRITY:
                if size != 20 or pos + 24 > end:
                    return False
                return integrity_ok(data, pos, self._key)
            pos += 4 + size + (-size % 4)
        return False

    def _lost(self) -> None:
        self.pending = None
        self.failures += 1
        self.lost += 1

    def _send(self) -> None:
        assert self.pending is not None
        self.tries += 1
        try:
            self._sendto(self.request(self.pending), self._remote)
        except OSError:
            pass  # like a datagram lost on the way: the retransmission or the count deals with it
        self.sent += 1

    def first_delay(self) -> float:
        return _interval()

    def fire(self, wall: float) -> float | None:
        """Send or retransmit what is due; seconds until this check needs the timer again (None:
        the connection has gone, or its consent has expired and it is being closed)."""
        connection = self.connection
        if not self.active or connection._closing or connection._nominated.get(self.component) is None:
            self.active = False
            return None
        if self.pending is not None:
            if self.tries <= RETRANSMISSIONS:
                self._send()
                return RTO * (1 << (self.tries - 1))  # 0.5, 1, then 2 s after the last send
            self._lost()
            if self.failures >= FAILURES_ALLOWED:
                log.info("ICE consent expired (%d checks unanswered)", self.failures)
                self.active = False
                connection._query_consent_task = None
                asyncio.ensure_future(connection.close())
                return None
            return _interval()
        if self.tries:  # answered: the next check follows the last by an interval
            self.tries = 0
            return _interval()
        self.pending = random.getrandbits(96).to_bytes(12, "big")
        self._send()
        return RTO


def _interval() -> float:
    return aioice.ice.CONSENT_INTERVAL * (0.8 + 0.4 * random.random())


def schedule() -> JobSchedule:
    """The running loop's schedule of consent checks (media.core.job_schedule)."""
    return job_schedule.schedule("consent checks")


def install(connection: Any) -> None:
    """Our checks instead of aioice's consent task for ``connection``, from when ICE completes
    (aioice then starts ``query_consent``). Answers are taken off each pair's socket first."""
    if getattr(connection, "_consent_checks", None) is not None:
        return
    connection._consent_checks = []

    async def query_consent() -> None:
        for pair in list(connection._nominated.values()):
            check = ConsentCheck(connection, pair)
            _take_answers(pair.protocol, check)
            connection._consent_checks.append(check)
            schedule().add(check)

    original_close = connection.close

    async def close() -> None:
        """The checks leave the schedule with the connection, not at their next turn (seconds later,
        holding the session's objects until then: media.core.job_schedule)."""
        for check in connection._consent_checks:
            schedule().remove(check)
        await original_close()

    connection.query_consent = query_consent
    connection.close = close


def _take_answers(protocol: Any, check: ConsentCheck) -> None:
    original = protocol.datagram_received

    def datagram_received(data: bytes, addr: tuple) -> None:
        if data[:1] == b"\x01" and check.response(data, addr):  # a STUN response or error
            return
        original(data, addr)

    protocol.datagram_received = datagram_received
