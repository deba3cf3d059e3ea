"""One DTLS certificate per process: shared by its peer connections, which still connect, and renewed."""

from __future__ import annotations

import asyncio
import datetime

import aiortc.rtcpeerconnection
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rtcdtlstransport import RTCCertificate

from media.transport import dtls_identity

NO_ICE = RTCConfiguration(iceServers=[])


def _fingerprint(sdp: str) -> str:
    return next(line for line in sdp.splitlines() if line.startswith("a=fingerprint:sha-256"))


async def _connect(a: RTCPeerConnection, b: RTCPeerConnection) -> None:
    a.addTransceiver("audio", direction="sendrecv")
    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    for _ in range(100):  # bounded: 10 s
        if a.connectionState == b.connectionState == "connected":
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not connected: {a.connectionState} / {b.connectionState}")


async def test_connections_share_one_certificate_and_still_connect() -> None:
    shared = [dtls_identity.peer_connection(NO_ICE) for _ in range(2)]
    assert aiortc.rtcpeerconnection.RTCCertificate is RTCCertificate  # the swap does not outlive the call
    peers = [RTCPeerConnection(NO_ICE) for _ in shared]
    try:
        # two DTLS handshakes in a row from the same cached OpenSSL context, against stock aiortc peers
        for peer, pc in zip(peers, shared):
            await _connect(peer, pc)
        prints = {_fingerprint(pc.localDescription.sdp) for pc in shared}
        assert len(prints) == 1  # one identity for the process
        assert _fingerprint(peers[0].localDescription.sdp) not in prints  # stock aiortc still makes its own
        cert = dtls_identity.certificate()
        profiles = shared[0].getTransceivers()[0].receiver.transport._srtp_profiles
        assert cert._create_ssl_context(profiles) is cert._create_ssl_context(list(profiles))
    finally:
        for pc in [*peers, *shared]:
            await pc.close()


def test_certificate_is_renewed_before_it_expires(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    first = dtls_identity.certificate()
    assert dtls_identity.certificate() is first
    # pretend the 30-day certificate is within the renewal margin
    monkeypatch.setattr(dtls_identity, "RENEW_BEFORE", datetime.timedelta(days=31))
    renewed = dtls_identity.certificate()
    assert renewed is not first
    assert renewed.getFingerprints()[0].value != first.getFingerprints()[0].value
