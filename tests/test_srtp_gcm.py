"""The fan-out's own AES-GCM SRTP protect (media.egress.srtp_gcm) writes exactly libsrtp's bytes."""

from __future__ import annotations

import os
import struct

import pytest
from pylibsrtp import Policy, Session
from pylibsrtp._binding import ffi as srtp_ffi

from media.egress import fanout, srtp_gcm

pytestmark = pytest.mark.skipif(srtp_gcm.new(bytes(16), bytes(12)) is None, reason="C fast path built without OpenSSL")

PROFILES = {16: Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 32: Policy.SRTP_PROFILE_AEAD_AES_256_GCM}


def sessions(key_len: int) -> tuple[Session, Session, srtp_gcm.GcmProtect]:
    key, salt = os.urandom(key_len), os.urandom(12)
    tx = Policy(key=key + salt, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=PROFILES[key_len])
    tx.allow_repeat_tx = True  # as aiortc sets it: retransmissions repeat an index
    tx.window_size = 1024
    rx = Policy(key=key + salt, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=PROFILES[key_len])
    rx.window_size = 1024
    own = srtp_gcm.new(key, salt)
    assert own is not None
    return Session(tx), Session(rx), own


def protect(own: srtp_gcm.GcmProtect, packet: bytes) -> bytes:
    buf = srtp_ffi.new("char[]", len(packet) + 16)
    length = srtp_ffi.new("int *", len(packet))
    buf[0:len(packet)] = packet
    assert own.protect(own.ctx, buf, length) == 0
    return bytes(srtp_ffi.buffer(buf)[0:length[0]])


def rtp(seq: int, payload: bytes, csrcs: int = 0, extension: bytes = b"") -> bytes:
    b0 = 0x80 | csrcs | (0x10 if extension else 0)
    head = struct.pack("!BBHII", b0, 0x60, seq, seq * 3000, 0x1234ABCD)
    head += b"".join(struct.pack("!I", 0x100 + i) for i in range(csrcs))
    if extension:
        head += struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
    return head + payload


@pytest.mark.parametrize("key_len", [16, 32])
def test_same_bytes_as_libsrtp_across_a_rollover_and_retransmissions(key_len):
    ref, rx, own = sessions(key_len)
    # up to the wrap, over it, retransmissions from both sides of it, then long steps and a second wrap
    seqs = list(range(65530, 65536)) + list(range(0, 6)) + [65533, 2, 65535, 0, 3] + [9, 200, 30000, 60000, 10, 11]
    for n, seq in enumerate(seqs):
        packet = rtp(seq, os.urandom(50 + 37 * n))
        mine = protect(own, packet)
        assert mine == ref.protect(packet), f"packet {n} (seq {seq})"
        if n < 12:  # the receiver decrypts it (first sight of each index; replays are refused by design)
            assert rx.unprotect(mine) == packet


def test_header_with_csrcs_and_extension_is_authenticated_not_encrypted():
    ref, rx, own = sessions(16)
    packet = rtp(7, b"\x01" * 300, csrcs=2, extension=b"\x10\xff\x00\x00")
    mine = protect(own, packet)
    assert mine == ref.protect(packet)
    header = len(packet) - 300
    assert mine[:header] == packet[:header] and len(mine) == len(packet) + 16
    tampered = bytearray(mine)
    tampered[header - 1] ^= 1  # header bytes are in the tag
    with pytest.raises(Exception):
        rx.unprotect(bytes(tampered))


def test_refuses_what_is_not_rtp():
    _ref, _rx, own = sessions(16)
    buf = srtp_ffi.new("char[]", 64)
    length = srtp_ffi.new("int *", 8)  # shorter than a header
    assert own.protect(own.ctx, buf, length) != 0
    length[0] = 12
    buf[0] = b"\x10"  # version 0
    assert own.protect(own.ctx, buf, length) != 0
    assert length[0] == 12


def test_bad_key_lengths_give_no_context():
    assert srtp_gcm.new(bytes(15), bytes(12)) is None
    assert srtp_gcm.new(bytes(16), bytes(14)) is None


def test_the_c_fan_out_loop_uses_the_streams_own_protect():
    """A target with the stream's context sends what libsrtp would have sent."""
    import socket

    ref, _rx, own = sessions(16)
    rx_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx_sock.bind(("127.0.0.1", 0))
    rx_sock.settimeout(2)
    try:
        target = fanout.new_target(own.ctx, tx_sock.fileno(), "127.0.0.1", rx_sock.getsockname()[1], own.address)
        assert target is not None
        target.ssrc, target.pt, target.seq_off, target.ts_off = 0x1234ABCD, 0x60, 0, 0
        array = fanout.ffi.new("struct fp_target *[1]", [target])
        for seq in (65535, 0, 1):
            payload = os.urandom(120)
            assert fanout.lib.fp_forward(0, array, 1, seq, seq * 3000, 0, payload, len(payload)) == 0
            sent = rx_sock.recv(2048)
            assert sent == ref.protect(struct.pack("!BBHII", 0x80, 0x60, seq, seq * 3000, 0x1234ABCD) + payload)
    finally:
        rx_sock.close()
        tx_sock.close()
