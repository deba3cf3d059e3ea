"""A publish shorter than the wait for sender reports is still recorded.

The recorder holds a publisher's frames until its clocks are known (sender reports, or arrival after
a few seconds). A speaker who leaves before either, or a sender that never reports, must not take
those frames away with it: they are placed by arrival.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiortc import RTCSessionDescription

from bench.clip import test_clip
from bench.whip_publisher import clip_peer
from media.engine import EngineConfig, MediaEngine
from media.recording.manager import SYNC_WAIT, RecordingManager
from tests.support.program_probe import decoding_peers
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.slow


async def test_a_publisher_gone_before_its_sender_reports_is_recorded(tmp_path: Path) -> None:
    engine = MediaEngine(EngineConfig(ice_host_addresses=["127.0.0.1"]))
    decoding_peers()  # the engine stops aiortc decoding in this process: later tests' peers decode
    engine.start()
    manager = RecordingManager(tmp_path / "rec", new_id=lambda: "rec1", segment_seconds=1.0)
    finished = []
    manager.on_finished = finished.append
    engine.on_producer.append(manager.on_producer)
    peer = clip_peer(test_clip(seconds=4, width=320, height=180, fps=30, kbps=300))
    pc = peer.pc
    try:
        for sender in pc.getSenders():
            async def silent(packets, sender=sender) -> None:  # type: ignore[no-untyped-def]
                return None  # this sender never sends a sender report
            sender._send_rtcp = silent  # type: ignore[method-assign]
        await pc.setLocalDescription(await pc.createOffer())
        producer = await engine.publish("short", pc.localDescription.sdp, role="speaker")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=producer.answer_sdp, type="answer"))
        await wait_until_async(lambda: all(s.packets > 30 for s in producer.sources.values()), 15,
                               "the publisher's packets at the engine")
        await asyncio.sleep(1.5)
        assert SYNC_WAIT > 1.5 + 0.5  # the publisher leaves before arrival alignment would start
    finally:
        await pc.close()
    await wait_until_async(lambda: producer.closed, 10, "the producer closed")
    recorder = await manager.stop("short")
    try:
        assert recorder is not None and recorder.segments, "the short publish left no segment"
        assert recorder.duration >= 1.0, recorder.duration
        assert finished == [recorder]
    finally:
        await engine.shutdown()
