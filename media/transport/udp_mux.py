"""UdpMux: every ICE connection of a media process on one UDP socket (``ICE_UDP_PORT``).

aioice gives each peer connection a socket of its own on an ephemeral port, so a firewall in front
of the server had to open every port. With a mux, each host address of the process has one socket
on the configured port, and each connection's host candidate there is an aioice ``StunProtocol``
whose transport (:class:`MuxedTransport`) sends through that socket. Incoming datagrams are sorted
as Pion's ``UDPMuxDefault`` (MediaMTX, LiveKit) sorts them:

- from a remote address the mux knows: to the connection it belongs to, whatever it is (STUN,
  DTLS, SRTP); an address becomes known when a connection sends to it (its connectivity checks)
  or when a Binding request from it names the connection's username fragment (``ours:theirs``)
  and is signed with the connection's password (so nobody can claim an address for a peer whose
  password he does not have); such a request for another connection moves the address there (a
  peer gone without a word, and a new one on its address and port);
- anything else from an unknown address (a request for an unknown fragment, a bad signature,
  a response, media) is dropped, unanswered; so is a request for an unknown fragment from a
  known address.

Everything above the protocol is unchanged: aioice's checks and nomination, our consent checks
and answers (media.transport.webrtc_transport), DTLS and SRTP. The C fan-out sends on the shared
socket's descriptor with each point's address (the socket is never connected to one peer, so
media.transport.pinned_path leaves it alone). The socket is read dry on each wake-up
(media.transport.socket_drain), and a publisher's burst sink hears where each read begins and ends.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from media import aiortc_compat
from media.transport import stun
from media.transport.socket_drain import BurstSink, SocketDrain

log = logging.getLogger(__name__)

# Every peer of the process shares the socket's buffers. The send buffer holds what the NIC has not
# sent yet of a burst to every point (a keyframe of ~50 KB to 250 points: 12 MB), which separate
# sockets held in 250 buffers of their own; a send that does not fit is dropped (and NACKed).
RCVBUF = 8 * 1024 * 1024
SNDBUF = 32 * 1024 * 1024


class UdpMux(asyncio.DatagramProtocol):
    """One shared socket bound to (address, port), opened on the event loop at first use."""

    def __init__(self, address: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((address, port))
        except OSError as exc:
            sock.close()
            raise OSError(exc.errno, f"cannot bind the ICE UDP port {port} on {address}: {exc.strerror}") from exc
        self.sock = sock
        self.address, self.port = sock.getsockname()[:2]
        for force, plain, size, sysctl in ((getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF, RCVBUF, "rmem_max"),
                                           (getattr(socket, "SO_SNDBUFFORCE", None), socket.SO_SNDBUF, SNDBUF, "wmem_max")):
            try:
                sock.setsockopt(socket.SOL_SOCKET, force if force is not None else plain, size)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, plain, size)  # no CAP_NET_ADMIN: the kernel caps it
            obtained = sock.getsockopt(socket.SOL_SOCKET, plain) // 2  # (Linux reports twice what it keeps)
            if obtained < size:
                log.warning("ICE UDP socket on %s port %d: %d bytes of buffer, not %d: raise net.core.%s "
                            "(docs/network.md)", self.address, self.port, obtained, size, sysctl)
        sock.setblocking(False)
        self.transport: asyncio.DatagramTransport | None = None
        self.drain: SocketDrain | None = None
        self._opening: asyncio.Future | None = None
        self._by_ufrag: dict[str, Any] = {}  # username fragment -> the connection's StunProtocol
        self._by_addr: dict[tuple, Any] = {}  # remote (host, port) -> StunProtocol
        self._bursts: dict[Any, BurstSink] = {}  # StunProtocol -> its publisher's burst sink
        self._reading: list[BurstSink] = []  # the sinks told a read began
        self.dropped = 0  # datagrams no connection claimed

    async def attach(self, connection: Any) -> Any:
        """A new StunProtocol of ``connection`` on this socket (its local candidate still to be set);
        None when a connection with its username fragment is here already (it could not be told apart)."""
        await self.open()
        ufrag = connection.local_username
        if ufrag in self._by_ufrag:
            return None
        protocol = aiortc_compat.stun_protocol(connection)
        protocol.connection_made(MuxedTransport(self, protocol))
        self._by_ufrag[ufrag] = protocol
        return protocol

    def stats(self) -> dict[str, Any]:
        """The socket's address, its peers, the remote addresses it routes, the datagrams it dropped."""
        return {"address": self.address, "port": self.port, "peers": len(self._by_ufrag),
                "remote_addresses": len(self._by_addr), "dropped": self.dropped}

    async def open(self) -> None:
        """Start reading the socket (at the engine's start: from then on a stranger's datagrams are
        dropped and counted, not left in the kernel's buffer until the first peer)."""
        if self.transport is None:
            if self._opening is None:
                self._opening = asyncio.ensure_future(self._start())
            await asyncio.shield(self._opening)

    async def _start(self) -> None:
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: self, sock=self.sock)
        # asyncio installs its own reader after connection_made, before the endpoint is returned
        self.drain = SocketDrain.take(transport, self, self.datagram_received)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if len(addr) > 2:
            addr = (addr[0], addr[1])  # IPv6: (host, port, flow info, scope id)
        protocol = self._by_addr.get(addr)
        if protocol is None or (data and data[0] == 0 and data[:2] == b"\x00\x01"):  # (a Binding request)
            protocol = self._claim(data, addr, protocol)
            if protocol is None:
                self.dropped += 1
                return
        protocol.datagram_received(data, addr)

    def _claim(self, data: bytes, addr: tuple, known: Any) -> Any:
        """The connection a Binding request is for: the one whose username fragment it names, if it
        carries that connection's signature; the address is that connection's from then on. A
        request without those credentials from a ``known`` address is its connection's (aioice
        answers it); otherwise nobody's."""
        if not data or data[0] != 0:
            return None
        credentials = stun.request_credentials(data)
        if credentials is None:
            return known
        username, integrity = credentials
        ufrag = username.split(b":", 1)[0].decode("ascii", "replace")
        if known is not None and ufrag == known.receiver.local_username:
            return known  # (its integrity is its connection's to check)
        protocol = self._by_ufrag.get(ufrag)
        if protocol is None or not stun.integrity_ok(data, integrity, protocol.receiver.local_password.encode()):
            return None
        self.register(protocol, addr)
        return protocol

    def register(self, protocol: Any, addr: tuple) -> None:
        """Datagrams from ``addr`` go to ``protocol`` from now on (the last to claim it wins, as in Pion)."""
        previous = self._by_addr.get(addr)
        if previous is not None and previous is not protocol:
            previous.transport.addresses.discard(addr)
        self._by_addr[addr] = protocol
        protocol.transport.addresses.add(addr)

    def detach(self, protocol: Any) -> None:
        """Forget a closed connection's protocol, its addresses and its burst sink."""
        transport = protocol.transport
        if self._by_ufrag.get(protocol.receiver.local_username) is protocol:
            del self._by_ufrag[protocol.receiver.local_username]
        for addr in transport.addresses:
            if self._by_addr.get(addr) is protocol:
                del self._by_addr[addr]
        transport.addresses.clear()
        self._bursts.pop(protocol, None)

    def drain_into(self, protocol: Any, burst: BurstSink) -> SocketDrain | None:
        """Bracket each read of the socket with ``burst``'s begin and end while ``protocol`` lives
        (a publisher's: its burst ends when the shared socket has been read dry)."""
        self._bursts[protocol] = burst
        return self.drain

    # BurstSink of the drained read: every publisher's sink brackets it
    def begin(self) -> None:
        self._reading = list(self._bursts.values())
        for burst in self._reading:
            burst.begin()

    def end(self) -> None:
        for burst in self._reading:
            burst.end()
        self._reading = []

    def error_received(self, exc: Exception) -> None:
        log.debug("ICE UDP socket %s:%d: %s", self.address, self.port, exc)


class MuxedTransport:
    """What aioice's StunProtocol needs of its datagram transport, on the mux's shared socket."""

    __slots__ = ("_mux", "_protocol", "addresses", "_closing")

    def __init__(self, mux: UdpMux, protocol: Any) -> None:
        self._mux = mux
        self._protocol = protocol
        self.addresses: set[tuple] = set()  # the remote addresses routed to this protocol
        self._closing = False

    @property
    def mux(self) -> UdpMux:
        return self._mux

    def sendto(self, data: bytes, addr: tuple) -> None:
        if self._closing:
            return
        addr = (addr[0], addr[1])
        if addr not in self.addresses:
            self._mux.register(self._protocol, addr)  # its answers come back to this connection
        self._mux.transport.sendto(data, addr)  # type: ignore[union-attr]

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._mux.transport.get_extra_info(name, default)  # type: ignore[union-attr]

    def close(self) -> None:
        """The connection is closing: the shared socket stays, the protocol leaves the mux."""
        if self._closing:
            return
        self._closing = True
        self._mux.detach(self._protocol)
        asyncio.get_running_loop().call_soon(self._protocol.connection_lost, None)


def mux_of(protocol: Any) -> UdpMux | None:
    """The mux an ICE protocol's socket is shared through (None: a socket of its own, or TURN)."""
    transport = getattr(protocol, "transport", None)
    return transport.mux if isinstance(transport, MuxedTransport) else None
