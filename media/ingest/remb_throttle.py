"""Our stand-in for aiortc's receive-side bitrate estimator: built on first use, its REMB throttled.

Every aiortc video receiver allocates a ``RemoteBitrateEstimator`` up front (a 1000-bucket rate
window, ~0.8 ms of CPU). A WHEP consumer's peer connection is send-only and never receives RTP, so
in a join storm of hundreds of subscribers that allocation was ~9 % of the server's CPU (py-spy).
The stand-in makes the real estimator on first use, so receivers that do get RTP behave unchanged.

aiortc sends the speaker a REMB every time the estimate is updated: every 500 ms while the path is
calm, but on every video packet while its overuse detector says "overusing" (over 400 in the three
seconds of a building queue in tests/test_remb_throttle.py), each one built, SRTCP-protected and
sent on the speaker's congested uplink just when it matters. libwebrtc's receivers throttle the
same estimate (``RembThrottler``): a lower estimate (by more than 3 %) goes out at once, anything
else at most every 200 ms. So does this one; the estimate itself is aiortc's, unchanged. (In the
benchmark's steady state the ingest sent ~2 REMB a second either way: no CPU to gain there.)
"""

from __future__ import annotations

from aiortc.rate import RemoteBitrateEstimator

from media import aiortc_compat

REMB_INTERVAL_MS = 200  # libwebrtc's kRembSendInterval
REMB_DROP_PERCENT = 103  # libwebrtc's kSendThresholdPercent: 3 % lower goes out at once

_installed = False


class RembThrottle:
    __slots__ = ("_real", "_sent_ms", "_sent_bitrate")

    def __init__(self) -> None:
        self._real: RemoteBitrateEstimator | None = None
        self._sent_ms = 0
        self._sent_bitrate = 0  # 0: no REMB sent yet

    def add(
        self, arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int
    ) -> tuple[int, list[int]] | None:
        """aiortc's estimate (bitrate, SSRCs) when it is worth a REMB now, else None."""
        if self._real is None:
            self._real = RemoteBitrateEstimator()
        remb = self._real.add(
            arrival_time_ms=arrival_time_ms, abs_send_time=abs_send_time, payload_size=payload_size, ssrc=ssrc
        )
        if remb is None:
            return None
        bitrate = remb[0]
        if (
            self._sent_bitrate
            and bitrate * REMB_DROP_PERCENT // 100 > self._sent_bitrate
            and 0 <= arrival_time_ms - self._sent_ms < REMB_INTERVAL_MS
        ):
            return None
        self._sent_ms, self._sent_bitrate = arrival_time_ms, bitrate
        return remb


def install() -> None:
    global _installed
    if not _installed:
        aiortc_compat.replace_bitrate_estimator(RembThrottle)
        _installed = True
