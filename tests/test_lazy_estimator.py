"""The lazy bitrate estimator: same estimates as aiortc's, allocated only when RTP arrives."""

from __future__ import annotations

from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rate import RemoteBitrateEstimator

from media import lazy_estimator
from media.lazy_estimator import LazyRemoteBitrateEstimator


def _feed(estimator) -> list:  # type: ignore[no-untyped-def]
    """30 s of 1200-byte packets at ~2 Mbit/s with abs-send-time (6.18 fixed point, 24 bits)."""
    out = []
    for i in range(30 * 200):
        t_ms = i * 5
        abs_send = ((t_ms << 18) // 1000) & 0xFFFFFF
        out.append(estimator.add(t_ms + (i % 7), abs_send, 1200, 0x1234))
    return out


def test_same_estimates_as_aiortc() -> None:
    real, lazy = _feed(RemoteBitrateEstimator()), _feed(LazyRemoteBitrateEstimator())
    assert lazy == real
    assert any(r is not None for r in real)  # the feed does produce REMB estimates


async def test_receivers_allocate_nothing_until_rtp() -> None:
    lazy_estimator.install()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        receiver = pc.addTransceiver("video", direction="sendonly").receiver
        estimator = receiver._RTCRtpReceiver__remote_bitrate_estimator
        assert isinstance(estimator, LazyRemoteBitrateEstimator) and estimator._real is None
        estimator.add(0, 0, 1200, 1)
        assert isinstance(estimator._real, RemoteBitrateEstimator)
    finally:
        await pc.close()
