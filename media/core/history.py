"""Retransmission history shared by every consumer of a source stream.

Keyed by the *source* sequence number, so one copy per packet serves all subscribers; each consumer
maps its own outgoing sequence number back through its offset.
"""

from __future__ import annotations

HISTORY_SIZE = 1024  # ~3.5 s of 2 Mbit/s video, comfortably over the 1 s the relay promises


class RtpHistory:
    __slots__ = ("size", "_mask", "_seq", "_ts", "_marker", "_payload")

    def __init__(self, size: int = HISTORY_SIZE) -> None:
        if size <= 0 or size & (size - 1):
            raise ValueError(f"history size {size} is not a power of two (sequence numbers are masked)")
        self.size = size
        self._mask = size - 1
        self._seq: list[int] = [-1] * size
        self._ts: list[int] = [0] * size
        self._marker: list[int] = [0] * size
        self._payload: list[bytes] = [b""] * size

    def put(self, seq: int, ts: int, marker: int, payload: bytes) -> None:
        i = seq & self._mask
        self._seq[i] = seq
        self._ts[i] = ts
        self._marker[i] = marker
        self._payload[i] = payload

    def get(self, seq: int) -> tuple[int, int, bytes] | None:
        i = seq & self._mask
        if self._seq[i] != seq:
            return None
        return self._ts[i], self._marker[i], self._payload[i]
