"""ICE consent checks answered from the bytes (media.transport.consent_answer), between real aioice peers.

The answer must be the one aioice gives (byte for byte), reach a real aioice client that checks
its integrity, and leave everything that is not a plain consent check to aioice.
"""

from __future__ import annotations

import asyncio

import aioice.stun as stun
import pytest

from media.transport.consent_answer import ConsentAnswer
from media.transport.srtp_intake import SrtpIntake
from tests.support.ice_pair import connected_pair


@pytest.mark.parametrize("addr", [("127.0.0.1", 40000), ("::1", 5004), ("2001:db8::7", 65535)])
def test_the_answer_is_aioices_byte_for_byte(addr) -> None:
    class Pair:
        remote_addr = addr

        class protocol:  # noqa: N801 - the attribute names aioice uses
            class transport:
                sendto = None

    class Conn:
        local_username, remote_username, local_password = "loc", "rem", "secretsecretsecret2024"

    transaction_id = bytes(range(1, 13))
    ours = ConsentAnswer(Conn, Pair)._response(transaction_id, addr)
    theirs = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE, transaction_id=transaction_id)
    theirs.attributes["XOR-MAPPED-ADDRESS"] = addr
    theirs.add_message_integrity(Conn.local_password.encode())
    assert ours == bytes(theirs)
    parsed = stun.parse_message(ours)  # checks the FINGERPRINT
    assert parsed.attributes["XOR-MAPPED-ADDRESS"] == addr
    assert parsed.check_message_integrity(Conn.local_password.encode())


async def test_consent_checks_are_answered_in_place_and_the_rest_by_aioice() -> None:
    point, server = await connected_pair()
    try:
        pair = server._nominated[1]
        intake = SrtpIntake(pair.protocol, None, rtp=False)  # STUN only: no DTLS needed
        intake.consent = ConsentAnswer.for_connection(server)
        assert intake.consent is not None
        assert ConsentAnswer.for_connection(point) is None  # controlling side: not ours to shortcut
        mine = point._nominated[1]
        key = point.remote_password.encode()

        async def check(nominate: bool = False, password: bytes = key) -> stun.Message:
            request = point.build_request(mine, nominate=nominate)
            response, _ = await mine.protocol.request(request, mine.remote_addr, integrity_key=password,
                                                      retransmissions=0)
            return response

        for i in range(3):  # plain consent checks: answered here, authenticated by the client
            response = await check()
            assert response.attributes["XOR-MAPPED-ADDRESS"] == mine.protocol.transport.get_extra_info("sockname")[:2]
            assert intake.consent.answered == i + 1
        await check(nominate=True)  # USE-CANDIDATE: aioice's business, still answered (by aioice)
        assert intake.consent.answered == 3
        with pytest.raises(stun.TransactionError):  # wrong key: no answer from us or aioice's 401
            await check(password=b"not-the-password-at-all")
        assert intake.consent.answered == 3
        assert server._nominated.get(1) is pair and not server._closing
        assert await check() is not None and intake.consent.answered == 4
    finally:
        await asyncio.gather(point.close(), server.close())
