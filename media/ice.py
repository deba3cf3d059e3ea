"""Peer connection configuration shared by ingest and egress transports."""

from __future__ import annotations

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

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


def rtc_configuration(ice_servers: list[dict]) -> RTCConfiguration:
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
            for s in ice_servers
        ]
    )
