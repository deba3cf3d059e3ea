"""ConsentCheck: our ICE consent checks towards a connected peer, packed from bytes, on one timer.

RFC 7675: a sender keeps sending only while its peer keeps consenting, which it shows by
answering a STUN Binding request every few seconds. aioice runs a task per connection that builds
each check as message objects, serialises them, runs a ``Transaction`` (its own timer and future)
and parses the answer into objects again. With hundreds of points these checks and their answers
were about a third of an idle media worker's Python time (py-spy, N=250). Here a check is packed
from the connection's fixed attributes and sent on the pair's socket; its answer is recognised by
its transaction id when the peer's transport (media.transport.webrtc_transport) hands it STUN
responses; every connection's checks and retries of a process run from one timer
(media.core.job_schedule), like the sender reports (media.egress.sender_report).

The policy is media.transport.webrtc_transport.patient_consent's: a check every 4-6 s,
retransmitted after RTO and 2*RTO, counted lost 7*RTO (3.5 s) after it was first sent; four lost in
a row (about 35 s without an answer) close the connection, as aioice would. The bytes are what
aioice's ``build_request`` and ``add_message_integrity`` make (tests/test_consent_check.py compares them).
"""

from __future__ import annotations

import logging
import random
import struct
from collections.abc import Callable
from typing import Any

import aioice.ice
from aioice.candidate import candidate_priority
from aioice.stun import COOKIE

from media.core import job_schedule
from media.core.job_schedule import JobSchedule
from media.transport.stun import (ATTR, BINDING_ERROR, BINDING_REQUEST, BINDING_SUCCESS, HEADER, ICE_CONTROLLED,
                                  ICE_CONTROLLING, MESSAGE_INTEGRITY, PRIORITY, USERNAME, attribute, integrity_ok,
                                  signed_message)

log = logging.getLogger(__name__)

RTO = 0.5  # seconds to the first retransmission (aioice's RETRY_RTO), doubling after
RETRANSMISSIONS = 2
FAILURES_ALLOWED = 4


class ConsentCheck:
    """One pair's checks: what to send, which transaction is outstanding, how many failed.
    ``alive`` says whether the pair is still the connection's; ``expire`` closes the connection."""

    __slots__ = ("_remote", "_sendto", "_key", "_body", "_alive", "_expire", "pending", "tries", "failures",
                 "sent", "answered", "lost", "active")

    def __init__(self, sendto: Callable[[Any, tuple], None], remote: tuple, username: bytes, key: bytes,
                 controlling: bool, tie_breaker: int, alive: Callable[[], bool], expire: Callable[[], None],
                 component: int = 1) -> None:
        self._remote = tuple(remote[:2])
        self._sendto = sendto
        self._key = key  # the peer's ICE password
        role = ICE_CONTROLLING if controlling else ICE_CONTROLLED
        self._body = (  # the attributes before MESSAGE-INTEGRITY, in aioice's order
            attribute(USERNAME, username)  # "theirs:ours"
            + attribute(PRIORITY, struct.pack("!I", candidate_priority(component, "prflx")))
            + attribute(role, struct.pack("!Q", tie_breaker))
        )
        self._alive = alive
        self._expire = expire
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
        if not self.active or not self._alive():
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
                self._expire()
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
