"""SocketDrain: the speaker's socket read dry per wake-up, its burst flushed before aiortc's bookkeeping.

A real asyncio datagram endpoint on 127.0.0.1 stands for the speaker's ICE socket (aioice's protocol
sits on the same kind of transport); a plain UDP socket is the speaker. Each datagram's first byte
says whether it ends its video frame, as the marker bit would.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from media.ingest import burst_boundary as burst_module
from media.transport import socket_drain
from media.ingest.burst_boundary import BurstBoundary


class Speaker(asyncio.DatagramProtocol):
    """Does per datagram what the producer does per packet: route, tell the burst, defer the rest."""

    def __init__(self, events: list) -> None:
        self.events = events
        self.burst: BurstBoundary | None = None
        self.errors: list[OSError] = []

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        assert self.burst is not None
        self.events.append(("routed", data[1:]))
        self.burst.packet(frame_open=data[0] == 1)
        self.burst.defer(self._bookkeeping(data[1:]))

    async def _bookkeeping(self, name: bytes) -> None:
        self.events.append(("bookkeeping", name))

    def error_received(self, exc: OSError) -> None:
        self.errors.append(exc)


@pytest.fixture
async def drained():
    loop = asyncio.get_running_loop()
    events: list = []
    transport, protocol = await loop.create_datagram_endpoint(lambda: Speaker(events), local_addr=("127.0.0.1", 0))
    burst = BurstBoundary(pc=None, flush=lambda: events.append(("flush", burst.packets)))
    protocol.burst = burst
    drain = socket_drain.SocketDrain.take(transport, burst, protocol.datagram_received)
    assert drain is not None
    speaker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    yield speaker, transport.get_extra_info("sockname"), events, drain, protocol
    speaker.close()
    transport.close()


async def _settle(events: list, count: int) -> None:
    for _ in range(100):  # bounded: 1 s at most
        if len(events) >= count:
            return
        await asyncio.sleep(0.01)


async def test_a_burst_is_read_in_one_wake_up_and_leaves_before_the_bookkeeping(drained) -> None:
    speaker, addr, events, drain, _protocol = drained
    for name in (b"a", b"b", b"c"):
        speaker.sendto(b"\x01" + name, addr)  # a frame's packets before its last
    speaker.sendto(b"\x00d", addr)  # its last packet (marker)
    await _settle(events, 9)
    assert drain.wakeups == 1 and drain.datagrams == 4
    assert events == [
        ("routed", b"a"), ("routed", b"b"), ("routed", b"c"), ("routed", b"d"),
        ("flush", 4),
        ("bookkeeping", b"a"), ("bookkeeping", b"b"), ("bookkeeping", b"c"), ("bookkeeping", b"d"),
    ]


async def test_a_frame_read_in_two_parts_leaves_whole(drained, monkeypatch) -> None:
    speaker, addr, events, drain, _protocol = drained
    monkeypatch.setattr(burst_module, "MAX_HOLD", 5.0)  # no timer fires during the first part
    speaker.sendto(b"\x01a", addr)
    await _settle(events, 2)
    assert events == [("routed", b"a"), ("bookkeeping", b"a")]  # held: its frame has not ended
    speaker.sendto(b"\x00b", addr)
    await _settle(events, 5)
    assert drain.wakeups == 2
    assert events[2:] == [("routed", b"b"), ("flush", 2), ("bookkeeping", b"b")]
    monkeypatch.setattr(burst_module, "MAX_HOLD", 0.01)
    speaker.sendto(b"\x01c", addr)  # a frame whose end never comes leaves within the hold
    await _settle(events, 8)
    assert events[5:] == [("routed", b"c"), ("bookkeeping", b"c"), ("flush", 3)]


async def test_a_long_burst_takes_several_wake_ups_and_loses_nothing(drained) -> None:
    speaker, addr, events, drain, _protocol = drained
    total = socket_drain.MAX_DATAGRAMS + 36
    for i in range(total):
        speaker.sendto(b"\x00" + i.to_bytes(2, "big"), addr)
    await _settle(events, 3 * total)
    routed = [name for kind, name in events if kind == "routed"]
    assert routed == [i.to_bytes(2, "big") for i in range(total)]
    assert drain.datagrams == total and drain.wakeups >= 2  # the loop got its turn in between
    assert [name for kind, name in events if kind == "bookkeeping"] == routed


async def test_a_send_error_is_reported_and_reading_goes_on(drained) -> None:
    _speaker, addr, events, drain, protocol = drained
    # The drained socket connected to a port nobody holds: the ICMP "port unreachable" of a send
    # comes back as an OSError on the next read. A speaker then takes that port and sends.
    gone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gone.bind(("127.0.0.1", 0))
    port = gone.getsockname()
    gone.close()
    drain._sock.connect(port)
    drain._sock.send(b"to nobody")
    await asyncio.sleep(0.01)
    speaker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    speaker.bind(port)
    speaker.sendto(b"\x00a", addr)
    await _settle(events, 3)
    speaker.close()
    assert [type(e) for e in protocol.errors] == [ConnectionRefusedError]
    assert events == [("routed", b"a"), ("flush", 1), ("bookkeeping", b"a")]
    assert drain.wakeups == 2  # the error ended one read; the datagram came with the next
