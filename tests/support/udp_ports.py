"""UDP ports for the media-port tests: free ones to configure, and the sockets a process holds."""

from __future__ import annotations

import os
import random
import re
import socket
from pathlib import Path


def free_udp_ports(count: int, host: str = "127.0.0.1") -> int:
    """The first of ``count`` consecutive UDP ports free on ``host``, below the kernel's ephemeral
    range (so no peer's own socket takes one meanwhile)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(200):  # bounded
        first = rng.randrange(10000, low - count)
        probes = []
        try:
            for port in range(first, first + count):
                probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                probes.append(probe)
                probe.bind((host, port))
            return first
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
    raise RuntimeError(f"no {count} consecutive free UDP ports below {low}")


def udp_sockets(pid: int) -> dict[str, int]:
    """The UDP sockets process ``pid`` holds: inode -> local port (a descriptor duplicated is one socket)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            match = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
        if match:
            inodes.add(match.group(1))
    sockets = {}
    for table in ("udp", "udp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if path.exists():
            for line in path.read_text().splitlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    sockets[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
    return sockets


def candidate_ports(sdp: str) -> list[tuple[str, int]]:
    """(address, port) of every UDP candidate line of an SDP."""
    return [(m.group(1), int(m.group(2)))
            for m in re.finditer(r"a=candidate:\S+ \d+ udp \d+ (\S+) (\d+) typ", sdp, re.I)]
