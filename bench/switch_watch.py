"""Load-generator subscribers that note when one publisher's picture reaches them (bench.floor_switch).

A floor switch keeps each subscriber's SSRC and continues its numbering (docs/architecture.md,
"Epochs and continuity"), so the point's packets cannot be told from the speaker's by their clear
headers. Their keyframes can: each starts with the encoder's sequence parameter set (SPS), and the
benchmark encodes the two clips so that their SPS differ (it checks that they do). Armed with one
SPS, a subscriber re-opens the load generator's keyframe check: the first packet of every video
frame is decrypted until one carries that SPS. The router switches a subscriber at the new
source's keyframe, whose SPS travels in its first packet, so that packet's kernel arrival time is
when the first packet of the new publisher's stream reached the subscriber.

The SRTP context guesses each packet's rollover counter from the last packet it decrypted, which is
right while fewer than 2^15 packets went by in between (about two minutes of this video); the
benchmark arms its subscribers at least once per round.
"""

from __future__ import annotations

import asyncio
import math
import struct
from typing import Any

from bench import ipc
from bench.loadgen import LoadGen, Subscriber, _no_decoder_threads
from media.transport.ice import restrict_host_addresses


def annexb_nals(access_unit: bytes) -> list[bytes]:
    """The NAL units of an Annex-B access unit (start codes and trailing zero bytes removed)."""
    return [n for n in (p.rstrip(b"\x00") for p in access_unit.split(b"\x00\x00\x01")) if n]


def clip_sps(video: list[tuple[int, bool, bytes]]) -> bytes:
    """The SPS of a clip's first keyframe (``bench.clip.Clip.video``)."""
    for _, key, data in video:
        if key:
            for nal in annexb_nals(data):
                if nal[0] & 0x1F == 7:
                    return nal
    raise ValueError("the clip has no keyframe with an SPS")


class WatchedSubscriber(Subscriber):
    """A load-generator subscriber that can be armed to look for one SPS."""

    def __init__(self, gen: "SwitchLoadGen", index: int, token: str) -> None:
        super().__init__(gen, index, token)
        self.seen: float | None = None  # arrival of the first packet carrying the armed SPS

    def arm(self) -> None:
        self.seen = None
        for st in self.streams.values():
            if st.kind == "video":
                st.keyframe = False  # the receive loop hands every frame's first packet to us again

    def disarm(self) -> None:
        for st in self.streams.values():
            if st.kind == "video":
                st.keyframe = True

    def _check_keyframe(self, st: Any, data: bytes, arrival: float) -> None:
        sps = self.gen.sps  # type: ignore[attr-defined]
        if sps is None or self.t_key is None:
            super()._check_keyframe(st, data, arrival)  # still joining: the first keyframe
            return
        if self.seen is not None:
            st.keyframe = True
            return
        srtp = self.dtls._rx_srtp
        try:
            clear = srtp.unprotect(data)
        except Exception:  # noqa: BLE001 - not decryptable: counted, the next frame is tried
            self.gen.undecryptable += 1  # type: ignore[attr-defined]
            return
        offset = 12 + 4 * (clear[0] & 0x0F)
        if clear[0] & 0x10 and len(clear) >= offset + 4:
            offset += 4 + 4 * struct.unpack_from("!H", clear, offset + 2)[0]
        if sps in clear[offset:]:
            self.seen = arrival
            st.keyframe = True


class SwitchLoadGen(LoadGen):
    """``bench.loadgen.LoadGen`` with three more requests: ``arm`` (look for an SPS from now on),
    ``marks`` (who saw it, when) and ``counts`` (the packets that arrived in the measurement window,
    per subscriber, once every socket is drained; then the window closes).

    It runs at nice 0 throughout, not at bench.loadgen's nice +10 and SCHED_IDLE windows: on a
    machine that other work keeps busy (other processes using 1-1.5 of 2 cores) those starved it, its
    sockets overflowed (RcvbufErrors), it stopped sending receiver reports, and the server dropped
    its subscribers or moved them to a low rendition (N=250, two runs). Its CPU is reported.
    """

    subscriber_class = WatchedSubscriber

    def __init__(self) -> None:
        super().__init__()
        self.sps: bytes | None = None
        self.undecryptable = 0

    async def handle(self, m: dict) -> dict:
        op = m["op"]
        if op == "arm":
            self.sps = bytes.fromhex(m["sps"])
            self.undecryptable = 0
            for sub in self.subs:
                sub.arm()  # type: ignore[attr-defined]
            return {}
        if op == "marks":
            marks = {str(s.index): s.seen for s in self.subs}  # type: ignore[attr-defined]
            if m.get("disarm"):
                self.sps = None
                for sub in self.subs:
                    sub.disarm()  # type: ignore[attr-defined]
            return {"marks": marks, "undecryptable": self.undecryptable,
                    "connected": sum(1 for s in self.subs if s.taken and not s.closed)}
        if op == "window":  # only arrivals are counted (no send-time windows), at this priority
            self.set_arrival(*m["arrival"])
            return {}
        if op == "counts":
            self.drain()  # what arrived in the window and still waits in a socket counts too
            self.set_arrival(math.inf, math.inf)
            return {"packets": {str(s.index): {st.kind: st.result()["rx_win"] for st in s.streams.values()}
                                for s in self.subs}}
        return await super().handle(m)

    def set_arrival(self, a0: float, a1: float) -> None:
        self.window.arrival = (a0, a1)
        if self.crx is not None:
            self.crx.set_arrival_window(a0, a1)

    def drain(self) -> None:
        """Read every subscriber socket now (the receive loop's pass, out of turn)."""
        if self.crx is not None:
            self.crx.drain_all(self.epoll.fileno(), self.on_event)
            return
        for fd, _ev in self.epoll.poll(0):
            reader = self.readers.get(fd)
            if reader is not None:
                reader()


def main(conn: Any) -> None:
    """A load-generator process (``bench.ipc.Child`` target), as ``bench.loadgen.main`` but at nice 0."""
    ipc.child_setup()
    restrict_host_addresses(["127.0.0.1"])
    _no_decoder_threads()

    async def run() -> None:
        await ipc.serve(conn, SwitchLoadGen().handle)

    asyncio.run(run())
