"""A weak link in user space: a UDP relay between one WebRTC peer and the server that caps the
server-to-peer bandwidth (a drop-tail queue of at most ``queue_ms`` at the cap), drops a share of
packets at random and adds delay. This kernel has no netem; both sides see only the relay's ports
(``client_side``, advertised to the peer as the server's candidate, and ``server_side``, advertised
to the server as the peer's), so every packet, ICE checks included, takes the link.
"""

from __future__ import annotations

import asyncio
import random
import re
import socket


class _Side(asyncio.DatagramProtocol):
    def __init__(self, on_datagram) -> None:  # type: ignore[no-untyped-def]
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        self.transport = transport
        sock = transport.get_extra_info("socket")
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):  # a keyframe's burst must not overflow here
            sock.setsockopt(socket.SOL_SOCKET, option, 4 << 20)

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[no-untyped-def]
        self.on_datagram(data, addr)


class LinkEmulator:
    def __init__(self, rate_bps: float | None = None, loss: float = 0.0, delay_ms: float = 0.0,
                 queue_ms: float = 500.0, seed: int = 7) -> None:
        self.rate_bps, self.loss, self.delay_ms, self.queue_ms = rate_bps, loss, delay_ms, queue_ms
        self.random = random.Random(seed)
        self.server_addr: tuple[str, int] | None = None  # the server's real candidate
        self.peer_addr: tuple[str, int] | None = None  # learned from the peer's first datagram
        self.client_side: _Side | None = None
        self.server_side: _Side | None = None
        self._free_at = 0.0  # loop time when the capped link has sent what it holds
        self.passed = 0
        self.dropped_cap = 0
        self.dropped_loss = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        _, self.client_side = await loop.create_datagram_endpoint(
            lambda: _Side(self._from_peer), local_addr=("127.0.0.1", 0))
        _, self.server_side = await loop.create_datagram_endpoint(
            lambda: _Side(self._from_server), local_addr=("127.0.0.1", 0))

    def set(self, rate_bps: float | None, loss: float = 0.0) -> None:
        self.rate_bps, self.loss = rate_bps, loss

    @staticmethod
    def _port(side: _Side) -> int:
        return side.transport.get_extra_info("sockname")[1]  # type: ignore[union-attr]

    def offer_to_server(self, sdp: str) -> str:
        """The peer's offer as the server should see it: every candidate is the relay's server side."""
        return re.sub(r"(a=candidate:\S+ \d+ udp \d+ )(\S+) (\d+)", rf"\g<1>127.0.0.1 {self._port(self.server_side)}", sdp)  # type: ignore[arg-type]

    def answer_to_peer(self, sdp: str) -> str:
        """The server's answer as the peer should see it: its candidate is the relay's client side."""
        match = re.search(r"a=candidate:\S+ \d+ udp \d+ (\S+) (\d+) typ host", sdp)
        assert match, "the server's answer has no host candidate"
        self.server_addr = (match.group(1), int(match.group(2)))
        return re.sub(r"(a=candidate:\S+ \d+ udp \d+ )(\S+) (\d+)", rf"\g<1>127.0.0.1 {self._port(self.client_side)}", sdp)  # type: ignore[arg-type]

    def _from_peer(self, data: bytes, addr) -> None:  # type: ignore[no-untyped-def]
        self.peer_addr = addr
        if self.server_addr is not None:
            self.server_side.transport.sendto(data, self.server_addr)  # type: ignore[union-attr]

    def _from_server(self, data: bytes, addr) -> None:  # type: ignore[no-untyped-def]
        """Server -> peer: random loss, then the cap's queue."""
        if self.peer_addr is None:
            return
        if self.loss and self.random.random() < self.loss:
            self.dropped_loss += 1
            return
        if self.rate_bps is None:
            self._deliver(data)
            return
        # The link sends one packet after the other at the cap: a packet leaves when the ones ahead
        # of it have; one that would wait more than the queue holds is dropped (drop-tail).
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = max(now, self._free_at)
        if (start - now) * 1000 > self.queue_ms:
            self.dropped_cap += 1
            return
        self._free_at = start + len(data) * 8 / self.rate_bps
        loop.call_at(self._free_at, self._deliver, data)

    def _deliver(self, data: bytes) -> None:
        self.passed += 1
        if self.delay_ms:
            asyncio.get_running_loop().call_later(
                self.delay_ms / 1000, self.client_side.transport.sendto, data, self.peer_addr)  # type: ignore[union-attr]
        else:
            self.client_side.transport.sendto(data, self.peer_addr)  # type: ignore[union-attr]

    def close(self) -> None:
        for side in (self.client_side, self.server_side):
            if side is not None and side.transport is not None:
                side.transport.close()


class ThreadedLink:
    """A ``LinkEmulator`` on an event loop of its own thread, for the page tests (whose Playwright
    holds the test's thread): the same link, set from the test's thread."""

    def __init__(self, **settings: float) -> None:
        import threading

        self.loop = asyncio.new_event_loop()
        self.link = LinkEmulator(**settings)
        self._thread = threading.Thread(target=self.loop.run_forever, name="link-emulator", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.link.start(), self.loop).result(5)

    def set(self, rate_bps: float | None, loss: float = 0.0) -> None:
        self.loop.call_soon_threadsafe(self.link.set, rate_bps, loss)

    def offer_to_server(self, sdp: str) -> str:
        return self.link.offer_to_server(sdp)

    def answer_to_peer(self, sdp: str) -> str:
        return self.link.answer_to_peer(sdp)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.link.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
