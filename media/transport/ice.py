"""ICE as the process uses it: the host addresses gathered, the ICE servers, socket buffers, and aioice
hardened against malformed datagrams."""

from __future__ import annotations

import socket

import aioice.ice
import aioice.stun
from aiortc import RTCConfiguration, RTCIceServer

from media.transport import turn_rest
from media.transport.webrtc_transport import ice_connections, protocol_socket

_original_host_addresses = aioice.ice.get_host_addresses


def restrict_host_addresses(addresses: list[str]) -> None:
    """Gather ICE host candidates only on these addresses (empty list restores all interfaces).

    aioice never offers 127.0.0.1 on its own; tests and single-host deployments need exactly that.
    """
    if not addresses:
        aioice.ice.get_host_addresses = _original_host_addresses
        return
    fixed = list(addresses)
    aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=True: list(fixed)


def drop_empty_datagrams() -> None:
    """Drop empty datagrams where aioice queues a connection's data (for aiortc, which reads its
    first byte to sort DTLS from SRTP and dies of an IndexError on an empty one, taking the
    connection with it). Anyone who learns a peer's port can send one: during the handshake that
    closed the peer. Once ICE has completed, the pair's datagrams are sorted by media.transport.webrtc_transport first."""
    original = aioice.ice.Connection.data_received
    if getattr(original, "drops_empty", False):
        return

    def data_received(self: aioice.ice.Connection, data: bytes, component: int) -> None:
        if data:
            original(self, data, component)

    data_received.drops_empty = True  # type: ignore[attr-defined]
    aioice.ice.Connection.data_received = data_received  # type: ignore[method-assign]


def strict_stun_parsing() -> None:
    """Make every way a datagram fails to parse as STUN a ``ValueError``, the one aioice catches
    (it then hands the datagram on as data, where it is dropped). Its attribute readers raise
    ``struct.error`` on an attribute shorter than its type needs (a PRIORITY of 3 bytes): that
    escaped the socket's read callback as a logged traceback per datagram, for anyone to send."""
    original = aioice.stun.parse_message
    if getattr(original, "strict", False):
        return

    def parse_message(data: bytes) -> aioice.stun.Message:
        try:
            return original(data)
        except ValueError:
            raise
        except Exception as exc:  # struct.error, IndexError, KeyError... from a malformed attribute
            raise ValueError(f"malformed STUN message: {exc}") from exc

    parse_message.strict = True  # type: ignore[attr-defined]
    aioice.stun.parse_message = parse_message


drop_empty_datagrams()
strict_stun_parsing()


def rtc_configuration(ice_servers: list[dict]) -> RTCConfiguration:
    """An entry with a ``secret`` gets fresh short-lived TURN credentials (media.transport.turn_rest) per call."""
    servers = []
    for s in ice_servers:
        username, credential = turn_rest.credentials(s, "diemcau")
        servers.append(RTCIceServer(urls=s["urls"], username=username, credential=credential))
    return RTCConfiguration(iceServers=servers)


def enlarge_socket_buffers(pc: object, rcvbuf: int = 8 * 1024 * 1024, sndbuf: int = 4 * 1024 * 1024) -> int:
    """Give the peer connection's UDP sockets deep kernel buffers; returns how many were changed.

    A publisher's socket lives in the busy ingest process: during a join storm its event loop can
    stall for tens of ms, and the default 208 KiB receive buffer then overflows and drops video.
    As root SO_*BUFFORCE passes net.core.rmem_max; otherwise the kernel caps the request.
    """
    changed = 0
    for connection in ice_connections(pc):
        for protocol in connection._protocols:  # one socket each
            sock = protocol_socket(protocol)
            if sock is None:
                continue
            for force, plain, size in (
                (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF, rcvbuf),
                (getattr(socket, "SO_SNDBUFFORCE", None), socket.SO_SNDBUF, sndbuf),
            ):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, force if force is not None else plain, size)
                except (OSError, TypeError):
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, plain, size)
                    except OSError:
                        pass
            changed += 1
    return changed
