"""The lazy bitrate estimator: same estimates as aiortc's, allocated only when RTP arrives."""

from __future__ import annotations

from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rate import RemoteBitrateEstimator

from media.ingest import remb_throttle
from media.ingest.remb_throttle import RembThrottle


def _feed(estimator) -> list:  # type: ignore[no-untyped-def]
    """30 s of 1200-byte packets at ~2 Mbit/s with abs-send-time (6.18 fixed point, 24 bits)."""
    out = []
    for i in range(30 * 200):
        t_ms = i * 5
        abs_send = ((t_ms << 18) // 1000) & 0xFFFFFF
        out.append(estimator.add(t_ms + (i % 7), abs_send, 1200, 0x1234))
    return out


def test_same_estimates_as_aiortc() -> None:
    real, lazy = _feed(RemoteBitrateEstimator()), _feed(RembThrottle())
    assert lazy == real
    assert any(r is not None for r in real)  # the feed does produce REMB estimates


async def test_receivers_allocate_nothing_until_rtp() -> None:
    remb_throttle.install()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        receiver = pc.addTransceiver("video", direction="sendonly").receiver
        estimator = receiver._RTCRtpReceiver__remote_bitrate_estimator
        assert isinstance(estimator, RembThrottle) and estimator._real is None
        estimator.add(0, 0, 1200, 1)
        assert isinstance(estimator._real, RemoteBitrateEstimator)
    finally:
        await pc.close()


def _queue_building(estimator) -> list:  # type: ignore[no-untyped-def]
    """20 s of 30 fps video (7 packets a frame); from 8 s on each frame arrives 4 ms later than the
    one before, for 2 s: a queue builds on the path and the overuse detector fires on every packet.
    One entry per packet: (arrival ms, what ``add`` returned)."""
    out = []
    for frame in range(20 * 30):
        sent_ms = frame * 1000 / 30
        late = 0 if frame < 240 else min(frame - 240, 60) * 4
        for k in range(7):
            sent = sent_ms + k * 0.05
            arrival = int(sent + 2 + late + k * 0.3)
            abs_send = (int(sent * (1 << 18)) // 1000) & 0xFFFFFF
            out.append((arrival, estimator.add(arrival_time_ms=arrival, abs_send_time=abs_send,
                                               payload_size=1200, ssrc=0x1234)))
    return out


def test_remb_is_throttled_as_libwebrtc_does() -> None:
    real = _queue_building(RemoteBitrateEstimator())
    ours = _queue_building(RembThrottle())
    real_rembs = [(t, r) for t, r in real if r is not None]
    sent = [(t, r) for t, r in ours if r is not None]
    assert len(real_rembs) > 300  # aiortc: a REMB per packet while overusing
    assert 10 <= len(sent) < len(real_rembs) / 10
    # what goes out is aiortc's own estimate of that packet, unchanged
    assert all(r == real[i][1] for i, (t, r) in enumerate(ours) if r is not None)
    # within 200 ms of the previous REMB only a drop of more than 3 % goes out ...
    for (t0, (b0, _)), (t1, (b1, _)) in zip(sent, sent[1:]):
        assert t1 - t0 >= 200 or b1 * 103 // 100 <= b0, (t0, b0, t1, b1)
    # ... and every estimate that was held back had such a REMB less than 200 ms before it
    for i, (t, r) in enumerate(real):
        if r is not None and ours[i][1] is None:
            t_last, (b_last, _) = [s for s in sent if s[0] <= t][-1]
            assert t - t_last < 200 and r[0] * 103 // 100 > b_last
    assert any(b1 < b0 * 0.97 and t1 - t0 < 200 for (t0, (b0, _)), (t1, (b1, _)) in zip(sent, sent[1:]))
