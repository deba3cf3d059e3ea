"""Where a media process's ICE host candidates come from: the ports, and the addresses advertised.

By default aioice binds one socket per peer and host address on an ephemeral port. Configured
(:func:`configure`), host candidates are made here instead:

- ``udp_port``: every peer on the process's one socket per host address, on that port
  (media.transport.udp_mux); the media workers take the ports after it (media.sharding.worker);
- ``port_range``: a socket per peer and address as before, on a free port of the range
  (media.transport.port_range), PortsExhausted when none is left;
- ``public_addresses``: each is advertised as one more host candidate, on the port of the
  process's socket of the same IP version (1:1 NAT: the address the peers reach us at, mapped by
  the NAT to our own, as LiveKit's ``node_ip`` and MediaMTX's ``webrtcAdditionalHosts``).

TURN candidates (``ice_servers``) stay aioice's. Server-reflexive ones are not gathered while this
is configured: behind a 1:1 NAT the public address is configured rather than discovered.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from dataclasses import dataclass, field
from typing import Any

from aioice import Candidate
from aioice.candidate import candidate_foundation, candidate_priority
from aioice.turn import UDP_SOCKET_BUFFER_SIZE

from media import aiortc_compat
from media.transport.port_range import PortRange
from media.transport.udp_mux import UdpMux

log = logging.getLogger(__name__)


@dataclass
class HostPorts:
    """The process's configuration, and its shared sockets when ``udp_port`` is set."""

    udp_port: int = 0  # 0: no shared socket
    port_range: PortRange | None = None
    public_addresses: list[str] = field(default_factory=list)
    muxes: dict[str, UdpMux] = field(default_factory=dict)  # host address -> its shared socket

    async def gather(self, connection: Any, component: int, addresses: list[str]) -> tuple[list, list]:
        """aioice's host gathering for one component (media.aiortc_compat.set_host_gatherer)."""
        protocols: list = []
        try:
            for address in addresses:
                protocol = await self._protocol(connection, component, address)
                if protocol is None:
                    continue
                host, port = protocol.transport.get_extra_info("sockname")[:2]
                protocol.local_candidate = host_candidate(component, host, port)
                protocols.append(protocol)
        except BaseException:
            for protocol in protocols:
                await protocol.close()
            raise
        candidates = [p.local_candidate for p in protocols]
        for public in self.public_addresses:
            version = ipaddress.ip_address(public).version
            ports = [c.port for c in candidates if ipaddress.ip_address(c.host).version == version]
            if ports:
                candidates.append(host_candidate(component, public, ports[0]))
        return protocols, candidates

    async def _protocol(self, connection: Any, component: int, address: str) -> Any:
        if self.udp_port:
            mux = self.muxes.get(address)
            if mux is None:
                log.warning("no ICE UDP socket on %s (bound at start on %s)", address, sorted(self.muxes))
                return None
            protocol = await mux.attach(connection)
            if protocol is not None:
                return protocol
            # aiortc gives every m-line's ICE transport of a peer the same credentials, and a
            # request names only those: an m-line left out of BUNDLE gets a socket of its own
            log.info("ICE connection %s: its username fragment is taken on the shared socket, own port",
                     connection.local_username)
        loop = asyncio.get_running_loop()
        try:
            if self.port_range is not None:
                bound = self.port_range.bind(address)
                _, protocol = await loop.create_datagram_endpoint(lambda: aiortc_compat.stun_protocol(connection),
                                                                  sock=bound)
            else:
                _, protocol = await loop.create_datagram_endpoint(lambda: aiortc_compat.stun_protocol(connection),
                                                                  local_addr=(address, 0))
        except OSError as exc:  # (PortsExhausted is not one: it reaches the caller)
            log.info("no ICE host socket on %s: %s", address, exc)
            return None
        sock = protocol.transport.get_extra_info("socket")  # sized as aioice sizes its own
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_SOCKET_BUFFER_SIZE)
        return protocol


def stats() -> list[dict[str, Any]]:
    """This process's shared ICE sockets (none without ``udp_port``), for /api/v1/media/stats."""
    return [mux.stats() for mux in _current.muxes.values()] if _current is not None else []


def open_sockets() -> list[asyncio.Future]:
    """Start reading this process's shared ICE sockets (needs a running loop)."""
    return [asyncio.ensure_future(mux.open()) for mux in _current.muxes.values()] if _current is not None else []


def host_candidate(component: int, host: str, port: int) -> Candidate:
    """A UDP host candidate, as aioice makes one."""
    return Candidate(foundation=candidate_foundation("host", "udp", host), component=component, transport="udp",
                     priority=candidate_priority(component, "host"), host=host, port=port, type="host")


_current: HostPorts | None = None


def configure(udp_port: int = 0, port_range: str = "", public_addresses: list[str] | None = None) -> None:
    """Set this process's host candidates (call after ``restrict_host_addresses``); nothing
    configured leaves aioice's own gathering. With ``udp_port`` the sockets are bound now, so a
    port in use fails the start, not the first peer. ValueError/OSError name what is wrong."""
    global _current
    if udp_port and port_range:
        raise ValueError("ICE_UDP_PORT and ICE_PORT_RANGE exclude each other: set one")
    for public in public_addresses or []:
        ipaddress.ip_address(public)  # ValueError names a malformed one
    if not udp_port and not port_range and not public_addresses:
        aiortc_compat.set_host_gatherer(None)
        _current = None
        return
    ports = HostPorts(udp_port, PortRange.parse(port_range) if port_range else None, list(public_addresses or []))
    previous = _current.muxes if _current is not None and _current.udp_port == udp_port else {}
    if udp_port:
        aiortc_compat.long_ufrags()
        for address in aiortc_compat.host_addresses():
            ports.muxes[address] = previous.get(address) or UdpMux(address, udp_port)
    aiortc_compat.set_host_gatherer(ports.gather)
    _current = ports
