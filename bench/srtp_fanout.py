"""The C fan-out loop with each stream's own AES-GCM context versus libsrtp, in one process.

Whole-server runs on a shared 2-vCPU VM vary by ±15 % from run to run, more than this difference,
so the two protects are compared here directly: 250 subscriber targets on 127.0.0.1 UDP sockets,
``fp_forward_batch`` (header rewrite, protect, GSO send) for bursts of 8 packets (a 720p delta frame)
and of 1 (an audio packet), alternating libsrtp and own-context rounds so both see the same machine;
then a frame split one byte apart, as packetizers do, sent as two GSO runs and, evened out by RTP
padding (``RTP_PAD_MAX``), as one; then runs of three and single packets on sockets that name the
address on every send and on sockets connected to their receiver, as the server's are
(media.transport.pinned_path); then a frame of three GSO runs sent with a call per run and in one sendmmsg;
then bursts on those connected sockets and on one socket shared by every target, naming each address
(``ICE_UDP_PORT``, media.transport.udp_mux).
CPU is this process's user+sys (getrusage), draining the receive sockets excluded; loopback bills the
kernel's receive path to the sender, so it is included, as it is in the server numbers.
"""

from __future__ import annotations

import os
import socket
import statistics
from collections.abc import Callable
from typing import Any

from pylibsrtp import Policy, Session

from bench.procstat import own_cpu_seconds
from media.egress import fanout, srtp_gcm

SUBSCRIBERS = 250
ROUNDS = 40  # bursts per measurement
REPEATS = 6  # alternations of the two protects


class _Rig:
    def __init__(self, n: int, pinned: bool = False, shared: bool = False) -> None:
        self.rx = []
        self.tx = []
        self.pinned = pinned  # sending sockets connected to their receivers (media.transport.pinned_path)
        one = socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if shared else None  # every target's (udp_mux)
        if one is not None:
            one.bind(("127.0.0.1", 0))
        for _ in range(n):
            r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            r.bind(("127.0.0.1", 0))
            r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
            r.setblocking(False)
            self.rx.append(r)
            t = one or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            if pinned:
                t.connect(r.getsockname())
            self.tx.append(t)
        self.keep: list[Any] = []
        self.made: list[Any] = []

    def targets(self, own: bool):  # type: ignore[no-untyped-def]
        made = []
        for i, (r, t) in enumerate(zip(self.rx, self.tx)):
            key, salt = os.urandom(16), os.urandom(12)
            policy = Policy(key=key + salt, ssrc_type=Policy.SSRC_ANY_OUTBOUND,
                            srtp_profile=Policy.SRTP_PROFILE_AEAD_AES_128_GCM)
            policy.allow_repeat_tx = True
            policy.window_size = 1024  # as aiortc configures its sessions
            session = Session(policy)
            port = r.getsockname()[1]
            if own:
                gcm = srtp_gcm.new(key, salt)
                if gcm is None:
                    raise RuntimeError("no own AES-GCM context (fast path not built?)")
                self.keep.append(gcm)
                target = fanout.new_target(gcm.ctx, t.fileno(), "127.0.0.1", port, gcm.address)
            else:
                self.keep.append(session)
                target = fanout.new_target(session._srtp[0], t.fileno(), "127.0.0.1", port)
            target.ssrc, target.pt = 0x10000 + i, 96
            if self.pinned:
                target.addrlen = 0  # what OutboundStream.path_pinned does
            made.append(target)
        self.keep.append(made)
        self.made += made
        return fanout.ffi.new("struct fp_target *[]", made)

    def drain(self) -> None:
        for r in self.rx:
            try:
                for _ in range(10_000):
                    r.recv(2048)
            except BlockingIOError:
                pass

    def close(self) -> None:
        for s in {*self.rx, *self.tx}:
            s.close()


def _measure(rig: _Rig, array: Any, n: int, payloads: list[bytes], seq0: int) -> float:
    """CPU microseconds per packet and subscriber for ROUNDS bursts (socket draining excluded)."""
    k = len(payloads)
    pkts = fanout.ffi.new("struct fp_pkt[]", k)
    bufs = [fanout.ffi.from_buffer(p) for p in payloads]
    spent = 0.0
    for r in range(ROUNDS):
        for j in range(k):
            p = pkts[j]
            p.payload, p.plen = bufs[j], len(payloads[j])
            p.seq, p.ts, p.marker = (seq0 + r * k + j) & 0xFFFF, r * 3000, int(j == k - 1)
        start = own_cpu_seconds()
        fanout.lib.fp_forward_batch(fanout._PROTECT, array, n, pkts, k)
        spent += own_cpu_seconds() - start
        if r % 4 == 3:
            rig.drain()
    rig.drain()
    return spent / (ROUNDS * k * n) * 1e6


def _alternate(variants: dict[str, tuple[_Rig, Any]], shapes: dict[str, list[bytes]], n: int, repeats: int,
               seq: int, out: dict, long_names: dict[str, str]) -> int:
    """Each burst shape on two variants (rig, targets) in turn, ``repeats`` times, so both see the same
    machine; the medians and their ratio go into ``out`` (a variant's row may take a longer name).
    Returns the next sequence number."""
    a, b = variants
    for label, payloads in shapes.items():
        got: dict[str, list[float]] = {a: [], b: []}
        for _ in range(repeats):
            for name, (rig, array) in variants.items():
                got[name].append(_measure(rig, array, n, payloads, seq))
            seq += ROUNDS * len(payloads)
        _record(out, label, got, long_names)
    return seq


def _record(out: dict, label: str, got: dict[str, list[float]], long_names: dict[str, str]) -> None:
    """Two variants' medians and their ratio as rows of ``out`` (a variant's row may take a longer name)."""
    a, b = got
    first, second = statistics.median(got[a]), statistics.median(got[b])
    out[f"{label}: {long_names.get(a, a)}, µs/pkt (median)"] = first
    out[f"{label}: {long_names.get(b, b)}, µs/pkt (median)"] = second
    out[f"{label}: {a} / {b}"] = first / second if second else float("nan")


def _alternate_setting(setting: Callable[..., Any], values: dict[str, Any], rig: _Rig, array: Any, n: int,
                       payloads: list[bytes], repeats: int, seq: int, out: dict, label: str,
                       long_names: dict[str, str]) -> int:
    """One burst shape under each of two values of a fan-out setting in turn (``setting(value)``
    sets it, ``setting()`` reads it), ``repeats`` times; rows as ``_alternate``'s. The setting is
    restored. Returns the next sequence number."""
    got: dict[str, list[float]] = {name: [] for name in values}
    before = setting()
    try:
        for _ in range(repeats):
            for name, value in values.items():
                setting(value)
                got[name].append(_measure(rig, array, n, payloads, seq))
                seq += ROUNDS * len(payloads)
    finally:
        setting(before)
    _record(out, label, got, long_names)
    return seq


def run(n: int = SUBSCRIBERS, repeats: int = REPEATS) -> dict:
    if not fanout.enabled() or srtp_gcm.new(bytes(16), bytes(12)) is None:
        return {"skipped": "C fast path or its AES-GCM binding not available"}
    rig = _Rig(n)
    try:
        arrays = {"libsrtp": rig.targets(own=False), "own": rig.targets(own=True)}
        bursts = {"burst of 8": [os.urandom(1180)] * 7 + [os.urandom(700)], "single packet": [os.urandom(160)]}
        out: dict[str, float | int | str] = {"subscribers": n, "alternations": repeats}
        seq = 0  # ever increasing: libsrtp refuses indexes older than its replay window
        seq = _alternate({"libsrtp": (rig, arrays["libsrtp"]), "own": (rig, arrays["own"])}, bursts, n, repeats,
                         seq, out, {"own": "own AES-GCM"})
        # A frame whose NAL unit the packetizer split "about equally" (sizes one byte apart), sent as
        # it is (two GSO runs) and evened out by RTP padding (one run), own AES-GCM contexts.
        split = [os.urandom(1181)] * 3 + [os.urandom(1180)] * 5
        seq = _alternate_setting(fanout.pad_max, {"2 runs": 0, "1 run": 8}, rig, arrays["own"], n, split, repeats,
                                 seq, out, "8 packets one byte apart",
                                 {"2 runs": "2 GSO runs", "1 run": "padded to 1 run"})
        # Runs of three (about what a point gets per send) and single packets, own AES-GCM, on
        # sockets that name the address on every send and on sockets connected to their receiver.
        pinned_rig = _Rig(n, pinned=True)
        try:
            pinned_array = pinned_rig.targets(own=True)
            shapes = {"run of 3": [os.urandom(1180)] * 2 + [os.urandom(700)], "single packet": [os.urandom(160)]}
            seq = _alternate({"address named": (rig, arrays["own"]), "pinned": (pinned_rig, pinned_array)}, shapes,
                             n, 2 * repeats, seq, out, {"pinned": "pinned socket"})
            # The bench clip's delta frame as the C loop cuts it into GSO runs: a 6-byte SEI NAL unit,
            # a slice of 8 packets plus the next slice's first, that slice's second (3 runs), sent
            # with a call per run and as one sendmmsg, pinned sockets.
            frame = [os.urandom(6)] + [os.urandom(1140)] * 8 + [os.urandom(1035)] * 2
            seq = _alternate_setting(fanout.runs_together, {"calls per run": False, "one sendmmsg": True},
                                     pinned_rig, pinned_array, n, frame, 2 * repeats, seq, out, "frame of 3 runs",
                                     {"calls per run": "a call per run"})
            # Bursts on the connected sockets and on one shared socket naming every address (ICE_UDP_PORT).
            shared_rig = _Rig(n, shared=True)
            try:
                shapes = {"burst of 8": [os.urandom(1180)] * 7 + [os.urandom(700)], "run of 3": shapes["run of 3"]}
                seq = _alternate({"pinned": (pinned_rig, pinned_array), "shared": (shared_rig, shared_rig.targets(own=True))},
                                 shapes, n, 2 * repeats, seq, out, {"pinned": "pinned sockets", "shared": "one shared socket"})
                rig.made += shared_rig.made
            finally:
                shared_rig.close()
            rig.made += pinned_rig.made
        finally:
            pinned_rig.close()
        dropped = sum(int(t.drops) for t in rig.made)
        if dropped:  # a protect that failed would look fast: the numbers would mean nothing
            raise RuntimeError(f"{dropped} packets were not sent")
        out["packets sent"] = sum(int(t.packets) for t in rig.made)
        return out
    finally:
        rig.close()


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key}: {value:.3g}" if isinstance(value, float) else f"{key}: {value}")
