"""Replaces aiortc's per-receiver decoder thread: the relay decodes nothing.

aiortc hands every frame its jitter buffer (with NACK recovery) reassembles to a queue read by a
``decoder_worker`` thread that decodes it. The relay forwards RTP and the recorder reassembles its
own frames from the Router's packets (``media.recording.reassembly``), so :func:`frame_worker` only
reads the queue until the receiver stops and decodes nothing: no decoder ever runs.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import aiortc.rtcrtpreceiver


def frame_worker(
    loop: asyncio.AbstractEventLoop,
    input_q: Any,
    output_q: asyncio.Queue,
    decode_error: threading.Event,
) -> None:
    """aiortc's thread body: frames are read and dropped."""
    while input_q.get() is not None:
        pass
    asyncio.run_coroutine_threadsafe(output_q.put(None), loop)  # ends the track, as aiortc's does


def install() -> None:
    aiortc.rtcrtpreceiver.decoder_worker = frame_worker
