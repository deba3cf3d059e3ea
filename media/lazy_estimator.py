"""Builds aiortc's receive-side bitrate estimator only when a packet needs it.

Every aiortc video receiver allocates a ``RemoteBitrateEstimator`` up front (a 1000-bucket rate
window, ~0.8 ms of CPU). A WHEP consumer's peer connection is send-only and never receives RTP, so
in a join storm of hundreds of subscribers that allocation was ~9 % of the server's CPU (py-spy).
The stand-in makes the real estimator on first use, so receivers that do get RTP behave unchanged.
"""

from __future__ import annotations

from typing import Any

import aiortc.rtcrtpreceiver
from aiortc.rate import RemoteBitrateEstimator

_installed = False


class LazyRemoteBitrateEstimator:
    __slots__ = ("_real",)

    def __init__(self) -> None:
        self._real: RemoteBitrateEstimator | None = None

    def add(self, *args: Any, **kwargs: Any) -> Any:
        if self._real is None:
            self._real = RemoteBitrateEstimator()
        return self._real.add(*args, **kwargs)


def install() -> None:
    global _installed
    if not _installed:
        aiortc.rtcrtpreceiver.RemoteBitrateEstimator = LazyRemoteBitrateEstimator  # type: ignore[misc]
        _installed = True
