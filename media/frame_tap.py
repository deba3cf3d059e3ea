"""Replaces aiortc's per-receiver decoder thread: complete encoded frames go to a tap, never a decoder.

aiortc starts ``decoder_worker`` for every incoming track. The relay installs this worker instead, so
the jitter buffer (with NACK recovery) still reassembles access units, which the recorder consumes as
Annex-B H.264 / Opus packets, and nothing is decoded.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

import aiortc.rtcrtpreceiver

log = logging.getLogger(__name__)

# tap(codec_parameters, jitter_frame) runs on the receiver's worker thread.
FrameTap = Callable[[Any, Any], None]

_taps: dict[int, FrameTap] = {}
_lock = threading.Lock()


def attach(track_queue: asyncio.Queue, tap: FrameTap) -> None:
    """Route frames of the track owning ``track_queue`` to ``tap`` (call at the track event)."""
    with _lock:
        _taps[id(track_queue)] = tap


def detach(track_queue: asyncio.Queue) -> None:
    with _lock:
        _taps.pop(id(track_queue), None)


def frame_worker(
    loop: asyncio.AbstractEventLoop,
    input_q: queue.Queue,
    output_q: asyncio.Queue,
    decode_error: threading.Event,
) -> None:
    while True:
        task = input_q.get()
        if task is None:
            asyncio.run_coroutine_threadsafe(output_q.put(None), loop)
            break
        with _lock:
            tap = _taps.get(id(output_q))
        if tap is None:
            continue
        codec, frame = task
        try:
            tap(codec, frame)
        except Exception:
            log.exception("frame tap failed")
    detach(output_q)


def install() -> None:
    aiortc.rtcrtpreceiver.decoder_worker = frame_worker
