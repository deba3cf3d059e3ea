"""One DTLS identity per process, shared by every peer connection the process terminates.

aiortc makes each RTCPeerConnection a fresh ECDSA key and self-signed certificate, hashes it three
ways for the SDP fingerprints, and builds each DTLS transport a new OpenSSL context (a PEM round
trip of the key): 3-4 ms of CPU per join, which a join storm pays once per connection point. A
server needs one identity, as mediasoup gives each worker one certificate. Peers still check the
fingerprint signalled in the answer; the handshake's keys are ephemeral (ECDHE) either way.
"""

from __future__ import annotations

import datetime
from typing import Any

import aiortc.rtcpeerconnection
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsFingerprint

RENEW_BEFORE = datetime.timedelta(days=2)  # aiortc's certificates are valid for 30 days


class ProcessCertificate(RTCCertificate):
    """An RTCCertificate whose fingerprints and OpenSSL contexts are computed once."""

    def __init__(self, key: Any, cert: Any) -> None:
        super().__init__(key, cert)
        self._fingerprints: list[RTCDtlsFingerprint] | None = None
        self._contexts: dict[tuple[bytes, ...], Any] = {}

    def getFingerprints(self) -> list[RTCDtlsFingerprint]:
        if self._fingerprints is None:
            self._fingerprints = super().getFingerprints()
        return list(self._fingerprints)

    def _create_ssl_context(self, srtp_profiles: list) -> Any:
        """One context per SRTP profile list: OpenSSL contexts are made to be shared by connections."""
        key = tuple(p.openssl_profile for p in srtp_profiles)
        context = self._contexts.get(key)
        if context is None:
            context = self._contexts[key] = super()._create_ssl_context(srtp_profiles)
        return context


_current: ProcessCertificate | None = None


def certificate() -> ProcessCertificate:
    """This process's certificate, renewed when it is close to expiring (live sessions keep theirs)."""
    global _current
    now = datetime.datetime.now(datetime.timezone.utc)
    if _current is None or _current.expires - now < RENEW_BEFORE:
        _current = ProcessCertificate.generateCertificate()
    return _current


class _Shared:
    """Stands in for RTCCertificate while a peer connection is constructed (see peer_connection)."""

    @staticmethod
    def generateCertificate() -> ProcessCertificate:
        return certificate()


def peer_connection(configuration: RTCConfiguration | None = None) -> RTCPeerConnection:
    """An RTCPeerConnection that uses this process's certificate instead of generating its own.

    aiortc's constructor calls ``RTCCertificate.generateCertificate()`` through its module's name;
    the name is swapped only for that synchronous call (aiortc is pinned), so nothing else sees it.
    """
    module = aiortc.rtcpeerconnection
    original = module.RTCCertificate
    module.RTCCertificate = _Shared  # type: ignore[misc,assignment]
    try:
        return RTCPeerConnection(configuration)
    finally:
        module.RTCCertificate = original  # type: ignore[misc]
