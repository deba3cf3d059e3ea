"""Pre-keyed AES-GCM SRTP protect for one outbound stream (RFC 7714), in ``media.native._fastpath``.

libsrtp's ``srtp_protect`` looks the stream up by SSRC, shifts a 1024-bit replay window (aiortc's
``window_size``) and re-initialises the cipher for every packet: in a worker's profile that
bookkeeping was about half of libsrtp's time on the fan-out path, AES the other half. For AES-GCM sessions (what browsers and aiortc
negotiate first) each outbound stream gets its own context: the session key and salt are derived
once from the DTLS-SRTP master key (re-exported from the DTLS connection, RFC 5764 section 4.2),
each packet only sets its IV. The bytes are libsrtp's (tests/test_srtp_gcm.py compares them).
The AES-GCM itself is the OpenSSL that pylibsrtp bundles for libsrtp (its EVP functions are bound
into the C code once, below): the same build libsrtp uses, with its AVX-512 code.

Every RTP packet of a stream with such a context is protected by it (forwarding, fast start,
retransmissions), so its rollover counter sees every sequence number. RTCP stays with libsrtp.
``DIEMCAU_FAST_SRTP=0`` keeps libsrtp for everything.
"""

from __future__ import annotations

import ctypes
import logging
import os
from typing import Any

from media.aiortc_compat import srtp_library_path

try:
    from media.native._fastpath import ffi, lib
except ImportError:  # not compiled: libsrtp protects every stream
    ffi = lib = None

log = logging.getLogger(__name__)
# fp_gcm_bind's order
EVP_FUNCTIONS = (
    "EVP_CIPHER_CTX_new", "EVP_CIPHER_CTX_free", "EVP_EncryptInit_ex", "EVP_EncryptUpdate",
    "EVP_EncryptFinal_ex", "EVP_CIPHER_CTX_ctrl", "EVP_aes_128_gcm", "EVP_aes_256_gcm",
    "EVP_aes_128_ctr", "EVP_aes_256_ctr",
)

_disabled = os.environ.get("DIEMCAU_FAST_SRTP", "1") == "0"


def _bind() -> bool:
    """Hand the C code the EVP functions of pylibsrtp's OpenSSL (already loaded with libsrtp)."""
    if lib is None or _disabled:
        return False
    try:
        library = ctypes.CDLL(srtp_library_path())
        addresses = [ctypes.cast(getattr(library, name), ctypes.c_void_p).value or 0 for name in EVP_FUNCTIONS]
    except (OSError, AttributeError) as exc:
        log.warning("libsrtp protects every stream: pylibsrtp's OpenSSL has no usable EVP API (%s)", exc)
        return False
    return lib.fp_gcm_bind(ffi.new("uintptr_t[]", addresses), len(addresses)) == 0


_bound = _bind()


class GcmProtect:
    """One stream's context: ``protect(ctx, buf, len_ptr)`` has ``srtp_protect``'s contract."""

    __slots__ = ("ctx", "protect", "address")

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.protect = lib.fp_gcm_protect
        self.address = int(ffi.cast("uintptr_t", ffi.addressof(lib, "fp_gcm_protect")))


def new(key: bytes, salt: bytes) -> GcmProtect | None:
    """A context for one SSRC from the master key and salt, or None (C path not built or not bound)."""
    if not _bound:
        return None
    ctx = lib.fp_gcm_new(key, len(key), salt, len(salt))
    if ctx == ffi.NULL:
        return None
    return GcmProtect(ffi.gc(ctx, lib.fp_gcm_free))
