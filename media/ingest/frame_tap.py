"""Replaces aiortc's per-receiver decoder thread: complete encoded frames go to a tap, never a decoder.

aiortc hands every frame its jitter buffer (with NACK recovery) reassembles to a queue read by a
``decoder_worker`` thread. The relay installs :func:`frame_worker` instead, which decodes nothing,
and a receiver with a tap gets a :class:`DirectFrames` in place of that queue: the frame (Annex-B
H.264 access unit or Opus packet) goes to the tap right where aiortc produced it, on the event
loop, and the worker thread only waits for the end. The tap (the recorder's leg) just enqueues, so
this costs the loop nothing, and spares a thread wake-up per frame (~80 a second).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import aiortc.rtcrtpreceiver

log = logging.getLogger(__name__)

# tap(codec_parameters, jitter_frame): called on the event loop with each complete frame.
FrameTap = Callable[[Any, Any], None]


class DirectFrames:
    """Stands in for a receiver's decoder queue (``put`` from aiortc, ``get`` from the worker)."""

    __slots__ = ("tap", "_ended")

    def __init__(self, tap: FrameTap) -> None:
        self.tap = tap
        self._ended = threading.Event()

    def put(self, item: tuple[Any, Any] | None) -> None:
        if item is None:  # the receiver stops
            self._ended.set()
            return
        try:
            self.tap(*item)
        except Exception:
            log.exception("frame tap failed")

    def get(self) -> None:
        self._ended.wait()
        return None


def attach(receiver: Any, tap: FrameTap) -> DirectFrames:
    """Send the receiver's frames to ``tap``; call before it starts receiving (before the answer)."""
    direct = DirectFrames(tap)
    receiver._RTCRtpReceiver__decoder_queue = direct
    return direct


def frame_worker(
    loop: asyncio.AbstractEventLoop,
    input_q: Any,
    output_q: asyncio.Queue,
    decode_error: threading.Event,
) -> None:
    """aiortc's thread body: decode nothing; without a tap, frames are read and dropped."""
    while input_q.get() is not None:
        pass
    asyncio.run_coroutine_threadsafe(output_q.put(None), loop)  # ends the track, as aiortc's does


def install() -> None:
    aiortc.rtcrtpreceiver.decoder_worker = frame_worker
