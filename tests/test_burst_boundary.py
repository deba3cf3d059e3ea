"""BurstBoundary: when the ingest flushes the fan-out of what it has read from the speaker.

A real UDP socket stands for the speaker's ICE socket (its unread bytes are what FIONREAD sees) and
an asyncio queue for aioice's queue of read-but-unhandled datagrams, as on a connected publisher.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from media.ingest.burst_boundary import MAX_HOLD, BurstBoundary
from tests.support.waiting import wait_until_async


@pytest.fixture
def speaker_socket():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    yield rx, tx
    rx.close()
    tx.close()


def _burst_end(rx: socket.socket, flushed: list[int]) -> BurstBoundary:
    burst = BurstBoundary(pc=None, flush=lambda: flushed.append(burst.packets))
    burst._fd = rx.fileno()
    burst._queue = asyncio.Queue()
    return burst


async def test_a_video_frame_leaves_whole(speaker_socket) -> None:
    rx, _tx = speaker_socket
    flushed: list[int] = []
    burst = _burst_end(rx, flushed)
    for _ in range(5):  # the socket is empty after each: the publisher is slower than the ingest
        burst.packet(frame_open=True)
    burst.packet(None)  # an audio packet in the middle of the frame waits for it
    assert flushed == []
    burst.packet(frame_open=False)  # the marker: the frame is complete
    assert flushed == [7]
    burst.packet(frame_open=False)  # a one-packet frame leaves at once
    burst.packet(None)  # audio between frames leaves at once
    assert flushed == [7, 8, 9]
    await asyncio.sleep(MAX_HOLD * 3)
    assert flushed == [7, 8, 9] and burst.flushes == 3  # no timer was left behind


async def test_a_frame_whose_end_never_comes_leaves_within_the_hold(speaker_socket) -> None:
    rx, _tx = speaker_socket
    flushed: list[int] = []
    burst = _burst_end(rx, flushed)
    burst.packet(frame_open=True)
    burst.packet(frame_open=True)
    assert flushed == []
    await wait_until_async(lambda: flushed, 0.5, "the held frame flushed", interval=0.01)
    assert flushed == [2]
    burst.packet(frame_open=True)  # still the same unfinished frame: held again, not sent alone
    assert flushed == [2]
    burst.packet(frame_open=False)
    assert flushed == [2, 4]


async def test_unread_datagrams_hold_the_burst(speaker_socket) -> None:
    rx, tx = speaker_socket
    flushed: list[int] = []
    burst = _burst_end(rx, flushed)
    tx.sendto(b"x" * 100, rx.getsockname())
    await asyncio.sleep(0.01)  # loopback delivers at once; give the kernel a moment anyway
    burst.packet(frame_open=False)  # the frame ended but more has arrived: part of the burst
    burst.packet(None)
    assert flushed == []
    rx.recv(2048)
    burst._queue.put_nowait(b"read but not handled")  # aioice's queue counts as unread too
    burst.packet(None)
    assert flushed == []
    burst._queue.get_nowait()
    burst.packet(None)
    assert flushed == [4]
