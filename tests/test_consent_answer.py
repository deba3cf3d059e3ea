"""ICE consent checks answered from the bytes (media.transport.consent_answer), between real aioice peers.

The answer must be the one aioice gives (byte for byte), reach a real aioice client that checks
its integrity, and leave everything that is not a plain consent check to aioice. The answerer's
transport (media.transport.webrtc_transport) hands it the checks from when ICE completes.
"""

from __future__ import annotations

import asyncio

import aioice.stun as stun
import pytest

from media.transport.consent_answer import ConsentAnswer
from media.transport.webrtc_transport import WebRtcTransport
from tests.support.ice_pair import connected_pair


@pytest.mark.parametrize("addr", [("127.0.0.1", 40000), ("::1", 5004), ("2001:db8::7", 65535)])
def test_the_answer_is_aioices_byte_for_byte(addr) -> None:
    password = b"secretsecretsecret2024"
    transaction_id = bytes(range(1, 13))
    ours = ConsentAnswer(lambda data, to: None, addr, b"loc:rem", password, lambda: True)._response(transaction_id, addr)
    theirs = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE, transaction_id=transaction_id)
    theirs.attributes["XOR-MAPPED-ADDRESS"] = addr
    theirs.add_message_integrity(password)
    assert ours == bytes(theirs)
    parsed = stun.parse_message(ours)  # checks the FINGERPRINT
    assert parsed.attributes["XOR-MAPPED-ADDRESS"] == addr
    assert parsed.check_message_integrity(password)


async def test_consent_checks_are_answered_in_place_and_the_rest_by_aioice() -> None:
    point, server = await connected_pair(lambda c: WebRtcTransport.of(c).own_consent())
    try:
        pair = server._nominated[1]
        ours = WebRtcTransport.of(server)  # STUN only: no DTLS needed
        assert ours.consent_answer is not None
        assert WebRtcTransport.of(point).consent_answer is None  # controlling side: not ours to shortcut
        answer = ours.consent_answer
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
            assert answer.answered == i + 1
        await check(nominate=True)  # USE-CANDIDATE: aioice's business, still answered (by aioice)
        assert answer.answered == 3
        with pytest.raises(stun.TransactionError):  # wrong key: no answer from us or aioice's 401
            await check(password=b"not-the-password-at-all")
        assert answer.answered == 3
        assert server._nominated.get(1) is pair and not server._closing
        assert await check() is not None and answer.answered == 4
    finally:
        await asyncio.gather(point.close(), server.close())
