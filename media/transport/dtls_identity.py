"""One DTLS identity per process, shared by every peer connection the process terminates.

aiortc makes each RTCPeerConnection a fresh ECDSA key and self-signed certificate, hashes it three
ways for the SDP fingerprints, and builds each DTLS transport a new OpenSSL context (a PEM round
trip of the key): 3-4 ms of CPU per join, which a join storm pays once per connection point. A
server needs one identity, as mediasoup gives each worker one certificate. Peers still check the
fingerprint signalled in the answer; the handshake's keys are ephemeral (ECDHE) either way.
"""

from __future__ import annotations

import datetime

from aiortc import RTCConfiguration, RTCPeerConnection

from media import aiortc_compat
from media.aiortc_compat import SharedCertificate

RENEW_BEFORE = datetime.timedelta(days=2)  # aiortc's certificates are valid for 30 days

_current: SharedCertificate | None = None


def certificate() -> SharedCertificate:
    """This process's certificate, renewed when it is close to expiring (live sessions keep theirs)."""
    global _current
    now = datetime.datetime.now(datetime.timezone.utc)
    if _current is None or _current.expires - now < RENEW_BEFORE:
        _current = SharedCertificate.generateCertificate()
    return _current


def peer_connection(configuration: RTCConfiguration | None = None) -> RTCPeerConnection:
    """An RTCPeerConnection that uses this process's certificate instead of generating its own."""
    return aiortc_compat.peer_connection(configuration, certificate)
