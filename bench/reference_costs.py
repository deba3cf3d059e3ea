"""The issue's reference micro-costs, measured the same way on the machine the benchmark runs on.

Issue 3's targets (6 µs per forwarded packet at N=250, "half of the best Janus figure") were set
from measurements on another 2-core machine. The operations whose costs it quotes (the shared
notes' "per-packet cost" table: tight loops, CPU time) are timed here, in this process, so a report
says how far this machine is from that one: a loopback `sendto` (the kernel's cost per datagram,
most of the relay's) and, in user space, `pylibsrtp`'s AES-GCM protect and aiortc's RTP parse.
The two kinds need not scale alike (the kernel's mitigations are in the report's machine lines),
so no single factor rescales a verdict: the targets are reported unscaled.

CPU is this process's user+sys (getrusage) over `OPS` operations, the median of `REPEATS` rounds;
draining the receiving socket and building the packets are excluded.
"""

from __future__ import annotations

import os
import socket
import statistics
from collections.abc import Callable

from aiortc.rtp import RtpPacket
from pylibsrtp import Policy, Session

from bench.procstat import own_cpu_seconds

OPS = 2000
REPEATS = 7

SENDTO = "loopback sendto, 1234 B"
PROTECT = "SRTP protect AEAD_AES_128_GCM, 1224 B (pylibsrtp)"
PARSE = "RtpPacket.parse, no header extension (aiortc)"
# step -> (the reference machine's µs per operation, where it is stated)
REFERENCE = {
    SENDTO: (1.63, "issue 3 (~1.6 µs), the notes' table"),
    PROTECT: (2.17, "issue 3 (~2.2 µs), the notes' table"),
    PARSE: (1.82, "the notes' table"),
}


def _timed(step: Callable[[], None]) -> float:
    """CPU µs per operation of ``step``, which runs OPS operations."""
    t0 = own_cpu_seconds()
    step()
    return (own_cpu_seconds() - t0) / OPS * 1e6


class _Sendto:
    def __init__(self) -> None:
        self.rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rx.bind(("127.0.0.1", 0))
        self.rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 23)  # OPS datagrams fit: none dropped
        self.rx.setblocking(False)
        self.addr = self.rx.getsockname()
        self.data = os.urandom(1234)

    def once(self) -> float:
        for _ in range(4 * OPS):  # drain what the last round sent (bounded), outside the timing
            try:
                self.rx.recv(2048)
            except BlockingIOError:
                break
        sendto, data, addr = self.tx.sendto, self.data, self.addr

        def step() -> None:
            for _ in range(OPS):
                sendto(data, addr)

        return _timed(step)

    def close(self) -> None:
        self.rx.close()
        self.tx.close()


class _Protect:
    def __init__(self) -> None:
        policy = Policy(key=os.urandom(28), ssrc_type=Policy.SSRC_ANY_OUTBOUND,
                        srtp_profile=Policy.SRTP_PROFILE_AEAD_AES_128_GCM)
        self.session = Session(policy=policy)
        self.body = os.urandom(1212)
        self.next_seq = 0  # fresh indexes each round: libsrtp refuses replays

    def once(self) -> float:
        first, self.next_seq = self.next_seq, self.next_seq + OPS
        # built outside the timing, as the notes' loop had its packets ready
        packets = [b"\x80\x60" + (seq & 0xFFFF).to_bytes(2, "big") + seq.to_bytes(4, "big")
                   + b"\x00\x00\x00\x01" + self.body for seq in range(first, first + OPS)]
        protect = self.session.protect

        def step() -> None:
            for packet in packets:
                protect(packet)

        return _timed(step)

    def close(self) -> None:
        pass


class _Parse:
    def __init__(self) -> None:
        packet = RtpPacket(payload_type=96, sequence_number=1, timestamp=3000, ssrc=1, payload=os.urandom(1180))
        self.data = packet.serialize()

    def once(self) -> float:
        parse, data = RtpPacket.parse, self.data

        def step() -> None:
            for _ in range(OPS):
                parse(data)

        return _timed(step)

    def close(self) -> None:
        pass


def run() -> dict[str, dict[str, float | str]]:
    """Each step: the reference machine's µs, this machine's (median of REPEATS rounds that take the
    steps in turn, so that all see the same moment of a VM whose speed drifts) and their ratio."""
    rigs = {SENDTO: _Sendto(), PROTECT: _Protect(), PARSE: _Parse()}
    got: dict[str, list[float]] = {step: [] for step in rigs}
    try:
        for _ in range(REPEATS):
            for step, rig in rigs.items():
                got[step].append(rig.once())
    finally:
        for rig in rigs.values():
            rig.close()
    out: dict[str, dict[str, float | str]] = {}
    for step, (ref, source) in REFERENCE.items():
        here = statistics.median(got[step])
        out[step] = {"reference_us": ref, "here_us": here, "ratio": here / ref, "source": source}
    return out


if __name__ == "__main__":
    for name, row in run().items():
        print(f"{name}: {row['here_us']:.2f} µs here, {row['reference_us']:.2f} µs there ({row['ratio']:.1f}×)")
