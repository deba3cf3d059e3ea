"""The ICE sockets' helpers (media.transport.ice, media.transport.webrtc_transport) on real aiortc peers over loopback."""

from __future__ import annotations

import socket

from aiortc import RTCPeerConnection

from media.transport.ice import enlarge_socket_buffers
from media.transport.webrtc_transport import ice_connections, protocol_socket
from bench.whip_publisher import NO_ICE
from tests.support.waiting import wait_until_async


async def test_enlarge_socket_buffers_reaches_every_ice_socket() -> None:
    a, b = RTCPeerConnection(NO_ICE), RTCPeerConnection(NO_ICE)
    try:
        a.addTransceiver("audio", direction="sendrecv")
        await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(b.localDescription)
        await wait_until_async(lambda: a.connectionState == "connected", 5, "the pair connected", interval=0.05)
        sockets = [protocol_socket(p) for c in ice_connections(a) for p in c._protocols]
        assert sockets and all(isinstance(s, socket.socket) for s in sockets)
        before = [s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) for s in sockets]
        assert enlarge_socket_buffers(a, rcvbuf=4 << 20, sndbuf=2 << 20) == len(sockets)
        after = [s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) for s in sockets]
        assert all(x > y for x, y in zip(after, before)), (before, after)
    finally:
        await a.close()
        await b.close()
