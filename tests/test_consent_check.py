"""Our ICE consent checks packed from bytes on one timer (media.transport.consent_check), between real aioice peers.

The check must be the one aioice sends (byte for byte), be answered by a real aioice peer whose
answer we authenticate, keep a healthy connection open without any aioice transaction, and close
a connection whose peer has gone silent after the policy's four lost checks.
"""

from __future__ import annotations

import asyncio

import aioice
import aioice.ice
import aioice.stun as stun
import pytest

from media.transport import consent_check
from media.transport.consent_check import ConsentCheck
from media.transport.webrtc_transport import WebRtcTransport
from tests.support.ice_pair import connected_pair
from tests.support.waiting import wait_until_async


class _Pair:
    component = 1
    remote_addr = ("127.0.0.1", 40000)


def _connection(controlling: bool) -> aioice.Connection:
    connection = aioice.Connection(ice_controlling=controlling, components=1)
    connection.remote_username, connection.remote_password = "remoteufrag", "remote-password-of-22ch"
    return connection


def _check(connection: aioice.Connection) -> ConsentCheck:
    """The check of ``connection``'s values, as its transport makes it (media.transport.webrtc_transport)."""
    return ConsentCheck(lambda data, addr: None, _Pair.remote_addr,
                        f"{connection.remote_username}:{connection.local_username}".encode(),
                        connection.remote_password.encode(), connection.ice_controlling, connection._tie_breaker,
                        alive=lambda: True, expire=lambda: None)


def _own_consent(connection: aioice.Connection) -> None:
    WebRtcTransport.of(connection).own_consent()


@pytest.mark.parametrize("controlling", [False, True])
def test_the_check_is_aioices_byte_for_byte(controlling) -> None:
    connection = _connection(controlling)
    transaction_id = bytes(range(1, 13))
    ours = _check(connection).request(transaction_id)
    theirs = connection.build_request(_Pair, nominate=False)
    theirs.transaction_id = transaction_id
    theirs.add_message_integrity(connection.remote_password.encode())
    assert ours == bytes(theirs)
    assert stun.parse_message(ours).check_message_integrity(connection.remote_password.encode())


def test_only_an_authentic_answer_to_the_pending_check_counts() -> None:
    connection = _connection(False)
    check = _check(connection)
    assert check.fire(0.0) == consent_check.RTO and check.sent == 1  # sends a check
    pending = check.pending
    assert pending is not None

    def answer(key: bytes, transaction_id: bytes = pending, kind=stun.Class.RESPONSE) -> bytes:
        message = stun.Message(stun.Method.BINDING, kind, transaction_id=transaction_id)
        message.attributes["XOR-MAPPED-ADDRESS"] = ("127.0.0.1", 5000)
        message.add_message_integrity(key)
        return bytes(message)

    key = connection.remote_password.encode()
    assert not check.response(answer(key, transaction_id=bytes(12)), _Pair.remote_addr)  # another's: aioice's
    assert not check.response(answer(key), ("127.0.0.1", 40001))  # from elsewhere
    assert check.response(answer(b"forged-key-forged-key!"), _Pair.remote_addr)  # ours, ignored
    assert check.pending == pending and check.answered == 0
    assert check.response(answer(key), _Pair.remote_addr)
    assert check.pending is None and check.answered == 1 and check.failures == 0
    assert not check.response(answer(key), _Pair.remote_addr)  # a late duplicate: no longer pending
    assert 4.0 <= check.fire(0.0) <= 6.0  # the next check after an interval
    check.fire(0.0)
    assert check.response(answer(key, check.pending, stun.Class.ERROR), _Pair.remote_addr)
    assert check.lost == 1 and check.failures == 1 and check.pending is None


async def test_checks_both_ways_keep_a_healthy_connection_without_aioice_transactions(monkeypatch) -> None:
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.1)
    point, server = await connected_pair(_own_consent)
    try:
        checks = [WebRtcTransport.of(point).consent_check, WebRtcTransport.of(server).consent_check]
        await wait_until_async(lambda: [(c.sent, c.answered) for c in checks], 5, "3 answered checks each way",
                               check=lambda seen: all(answered >= 3 for _, answered in seen), interval=0.02)
        assert all(c.lost == 0 and c.active for c in checks)
        assert not point._closing and not server._closing
        assert all(len(c._nominated[1].protocol.transactions) == 0 for c in (point, server))
    finally:
        await asyncio.gather(point.close(), server.close())
    await wait_until_async(lambda: not any(c.active for c in checks) or (point._closing and server._closing), 1,
                           "the checks stopped with their connections", interval=0.02)


async def test_a_silent_peer_is_closed_after_four_lost_checks(monkeypatch) -> None:
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.05)
    monkeypatch.setattr(consent_check, "RTO", 0.02)
    point, server = await connected_pair(_own_consent)
    check = WebRtcTransport.of(server).consent_check
    try:
        await wait_until_async(lambda: check.answered >= 1, 3, "a first answered check", interval=0.02)
        for protocol in point._protocols:  # the point vanishes: nothing answers any more
            protocol.transport.close()
        # four checks of 0.14 s each after intervals of 0.04-0.06 s: well under 2 s
        await wait_until_async(lambda: (server._closing, check.sent, check.answered, check.lost), 3,
                               "the silent peer closed", check=lambda seen: seen[0], interval=0.02)
        assert check.lost == consent_check.FAILURES_ALLOWED and not check.active
        assert check.sent >= check.answered + 3 * consent_check.FAILURES_ALLOWED  # each sent thrice
    finally:
        await asyncio.gather(point.close(), server.close(), return_exceptions=True)
