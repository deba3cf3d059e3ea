"""SocketDrain: reads the speaker's ICE socket dry on each wake-up, then tells the burst it is in.

asyncio's datagram transport reads one datagram per event-loop iteration. A frame of the speaker's
(3 packets, 45 for a keyframe) took as many iterations, each an ``epoll_wait`` and the loop's own
bookkeeping, and whether the burst had ended had to be asked of the kernel (FIONREAD) per packet.
Drained, the burst's end is the EAGAIN that stops the loop, so the fan-out of a frame can leave
right after its last packet is read, and the work that can wait (aiortc's receive statistics,
bitrate estimate, NACK generator and jitter buffer, ~80 µs a packet) runs after it instead of
before it (media.ingest.burst_boundary). The ingest's main thread used ~11 % less CPU; the delay at the points did
not measurably change, being the workers' fan-out (docs/architecture.md).

Only the speaker's socket is drained: a point's socket carries a few RTCP datagrams a second.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from media import aiortc_compat

MAX_DATAGRAMS = 64  # per wake-up: the API and timers on the same loop wait for no more than this
MAX_SIZE = 65536  # a UDP datagram is never larger: nothing is truncated


class BurstSink(Protocol):
    def begin(self) -> None: ...

    def end(self) -> None: ...


class SocketDrain:
    """Takes over the read callback of one asyncio datagram transport (a ``_SelectorDatagramTransport``
    under aioice). Datagrams go to ``receive`` (the peer's media.transport.webrtc_transport), one by
    one and in order; read errors to the transport's protocol, as asyncio would hand them."""

    __slots__ = ("_transport", "_sock", "_burst", "_receive", "wakeups", "datagrams")

    def __init__(self, transport: Any, burst: BurstSink, receive: Callable[[bytes, tuple], None]) -> None:
        self._transport = transport
        self._burst = burst
        self._receive = receive
        self.wakeups = 0
        self.datagrams = 0
        self._sock = aiortc_compat.take_reads(transport, self._read_ready)

    @classmethod
    def take(cls, transport: Any, burst: BurstSink, receive: Callable[[bytes, tuple], None]) -> SocketDrain | None:
        """Drain ``transport``'s socket from now on; None where there is no plain selector transport
        (a TURN-relayed pair, another event loop), which then keeps asyncio's own reads."""
        if not aiortc_compat.drainable(transport):
            return None
        return cls(transport, burst, receive)

    def _read_ready(self) -> None:
        transport = self._transport
        lost = aiortc_compat.transport_lost
        if lost(transport):
            return
        receive = self._receive
        recvfrom = self._sock.recvfrom
        burst = self._burst
        count = 0
        burst.begin()
        try:
            while count < MAX_DATAGRAMS:
                try:
                    data, addr = recvfrom(MAX_SIZE)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:  # an ICMP error from an earlier send, as asyncio reports it
                    aiortc_compat.report_read_error(transport, exc)
                    break
                count += 1
                receive(data, addr)
                if lost(transport):
                    break
        finally:
            self.wakeups += 1
            self.datagrams += count
            burst.end()
