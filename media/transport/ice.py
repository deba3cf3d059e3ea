"""ICE as the process uses it: the host addresses gathered, the ICE servers, socket buffers, and aioice
hardened against malformed datagrams from import on (the patches themselves: media.aiortc_compat)."""

from __future__ import annotations

import socket

from aiortc import RTCConfiguration, RTCIceServer

from media import aiortc_compat
from media.transport import turn_rest
from media.transport.webrtc_transport import ice_connections, protocol_socket

aiortc_compat.drop_empty_datagrams()
aiortc_compat.strict_stun_parsing()


def restrict_host_addresses(addresses: list[str]) -> None:
    """Gather ICE host candidates only on these addresses (empty list restores all interfaces).

    aioice never offers 127.0.0.1 on its own; tests and single-host deployments need exactly that.
    """
    aiortc_compat.set_host_addresses(addresses)


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
        for protocol in aiortc_compat.ice_protocols(connection):  # one socket each
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
