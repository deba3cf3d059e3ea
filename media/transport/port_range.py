"""PortRange: ICE host sockets bound only inside a configured range of UDP ports (``ICE_PORT_RANGE``).

The alternative to one shared port (media.transport.udp_mux) for operators who open a range in
their firewall, as Janus's ``rtp_port_range`` does. Each peer's socket takes the next free port of
the range; the kernel is the allocator, so the media processes share one range without talking to
each other. When every port is taken the peer cannot be answered: :class:`PortsExhausted` reaches
the WHIP/WHEP request as a 503 at once, instead of an answer without candidates that never connects.
"""

from __future__ import annotations

import errno
import re
import socket
from dataclasses import dataclass, field


class PortsExhausted(RuntimeError):
    """Every port of the ICE port range is in use (WHIP/WHEP answer 503)."""


@dataclass
class PortRange:
    first: int
    last: int
    _next: int = field(default=0, repr=False)  # where the next search starts (ports are reused last)

    @classmethod
    def parse(cls, text: str) -> PortRange:
        """``"40000-40199"`` (both ends included) -> PortRange; ValueError with the reason otherwise."""
        match = re.fullmatch(r"\s*(\d{1,5})\s*-\s*(\d{1,5})\s*", text)
        if match is None:
            raise ValueError(f"an ICE port range is written first-last, e.g. 40000-40199 (got {text!r})")
        first, last = int(match.group(1)), int(match.group(2))
        if not 1024 <= first <= last <= 65535:
            raise ValueError(f"an ICE port range must lie within 1024-65535, first <= last (got {text!r})")
        return cls(first, last)

    def __len__(self) -> int:
        return self.last - self.first + 1

    def bind(self, address: str) -> socket.socket:
        """A non-blocking UDP socket on ``address`` and a free port of the range; PortsExhausted when
        none is free. Other bind errors (the address is gone) are raised as they are."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        size = len(self)
        for step in range(size):
            port = self.first + (self._next + step) % size
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.bind((address, port))
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    continue
                raise
            self._next = (port - self.first + 1) % size
            sock.setblocking(False)
            return sock
        raise PortsExhausted(f"every ICE UDP port of {self.first}-{self.last} on {address} is in use")
