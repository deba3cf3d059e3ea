"""A point's ICE socket connected to its nominated peer, so the kernel keeps the route.

On an unconnected UDP socket every send looks up the route and the IPsec policy for its address
and takes a reference on the route; a connected socket keeps both and sends without an address.
The fan-out makes about 130 sends a second to every point (media.egress.fanout), so once a consumer's
DTLS is up its socket is connected to the nominated pair's remote address and the C loop sends
on it without one. In bench/srtp_fanout.py (250 points, one process, alternating) a connected
socket cost 5-9 % less per packet in runs of three and 12-15 % less for a single packet.

After DTLS the nominated pair is the only one the connection uses: aiortc does no ICE restart and
aioice no renomination, and consent checks in both directions run on that pair. The kernel now
drops datagrams from any other address on the socket: late checks on pairs that lost the
nomination, and anyone else's traffic, which no longer reaches Python at all.
"""

from __future__ import annotations

import logging
import socket

log = logging.getLogger(__name__)


def pin(sock: socket.socket, remote: tuple) -> bool:
    """Connect the ICE socket ``sock`` to ``remote`` (host, port); False if it cannot be (it then
    stays as it was and sends keep naming the address)."""
    if sock.type != socket.SOCK_DGRAM:
        return False
    try:
        sock.connect(remote)
    except OSError as exc:
        log.info("ICE socket not pinned to %s: %s", remote, exc)
        return False
    return True


def is_pinned(sock: socket.socket, remote: tuple) -> bool:
    """Whether the kernel holds ``sock`` connected to ``remote`` (read back, for the stats)."""
    try:
        peer = sock.getpeername()
    except OSError:
        return False
    return peer[:2] == tuple(remote[:2])
