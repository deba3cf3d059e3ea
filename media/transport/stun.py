"""The STUN bytes of ICE consent (RFC 5389, 8445, 7675): message types, attributes, signing.

Our consent answers (media.transport.consent_answer) and checks (media.transport.consent_check)
are packed and read from the bytes rather than through aioice's message objects; the numbers and
the signing both use live here, once. The bytes are aioice's (the tests compare them).
"""

from __future__ import annotations

import binascii
import hmac
import struct

from aioice.stun import COOKIE, FINGERPRINT_XOR

BINDING_REQUEST, BINDING_SUCCESS, BINDING_ERROR = 0x0001, 0x0101, 0x0111
USERNAME, MESSAGE_INTEGRITY, XOR_MAPPED_ADDRESS = 0x0006, 0x0008, 0x0020
PRIORITY, USE_CANDIDATE = 0x0024, 0x0025
FINGERPRINT, ICE_CONTROLLED, ICE_CONTROLLING = 0x8028, 0x8029, 0x802A

HEADER = struct.Struct("!HHI12s")  # type, length, magic cookie, transaction id
ATTR = struct.Struct("!HH")  # an attribute's type and length


def attribute(kind: int, value: bytes) -> bytes:
    """One attribute, padded to four bytes."""
    return ATTR.pack(kind, len(value)) + value + b"\x00" * (-len(value) % 4)


def signed_message(kind: int, transaction_id: bytes, body: bytes, key: bytes) -> bytes:
    """A STUN message of ``body``'s attributes, then MESSAGE-INTEGRITY (HMAC-SHA1 with ``key``)
    and FINGERPRINT, as aioice's ``add_message_integrity`` and serialisation make it."""
    head = HEADER.pack(kind, len(body) + 24, COOKIE, transaction_id)
    body += ATTR.pack(MESSAGE_INTEGRITY, 20) + hmac.digest(key, head + body, "sha1")
    head = HEADER.pack(kind, len(body) + 8, COOKIE, transaction_id)
    crc = binascii.crc32(head + body) ^ FINGERPRINT_XOR
    return head + body + ATTR.pack(FINGERPRINT, 4) + struct.pack("!I", crc)


def integrity_ok(data: bytes, integrity: int, key: bytes) -> bool:
    """Whether the MESSAGE-INTEGRITY attribute at offset ``integrity`` of ``data`` is ``key``'s."""
    signed = data[:2] + struct.pack("!H", integrity + 24 - 20) + data[4:integrity]
    return hmac.compare_digest(hmac.digest(key, signed, "sha1"), data[integrity + 4:integrity + 24])


def request_credentials(data: bytes) -> tuple[bytes, int] | None:
    """(USERNAME, offset of MESSAGE-INTEGRITY) of a well-formed Binding request carrying both;
    None for anything else. Only the layout is read: ``integrity_ok`` checks the signature."""
    if len(data) < 20:
        return None
    kind, length, cookie, _ = HEADER.unpack_from(data)
    if kind != BINDING_REQUEST or cookie != COOKIE or length + 20 != len(data):
        return None
    pos, end = 20, len(data)
    username = None
    while pos + 4 <= end:
        atype, alen = ATTR.unpack_from(data, pos)
        if pos + 4 + alen > end:
            return None
        if atype == USERNAME:
            username = data[pos + 4:pos + 4 + alen]
        elif atype == MESSAGE_INTEGRITY:
            return (username, pos) if username is not None and alen == 20 else None
        pos += 4 + alen + (-alen % 4)
    return None
