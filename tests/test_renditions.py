"""The low rendition (media.renditions) and switching a point between renditions, on a real engine
with real aiortc peers over loopback.

A point pinned to the low rendition gets the server's transcode (640x360) without re-signalling,
from the transcoder that starts for it and stops after its idle time; pinned to audio only, its
video stops and its audio goes on; unpinned, it is back on the full picture.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from bench.clip import test_clip
from media.engine import EngineConfig, MediaEngine
from tests.support.program_probe import decoding_peers
from tests.support.waiting import wait_until_async
from tests.test_floor_media import CONF, publish, watch

pytestmark = pytest.mark.slow


async def until(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    await wait_until_async(check, timeout, what, check=lambda v: v is True, interval=0.1)


@pytest.fixture
async def engine():
    # Pins alone (adaptation off): on a loaded machine adaptation could move the unpinned watcher
    # too; its policy is tested in tests/test_adaptation.py.
    engine = MediaEngine(EngineConfig(ice_host_addresses=["127.0.0.1"], transcode_idle=1.0, adapt=False))
    decoding_peers()
    engine.start()
    yield engine
    await engine.shutdown()


async def test_pin_low_audio_and_back_without_resignalling(engine: MediaEngine) -> None:
    clip = test_clip(seconds=6, width=1280, height=720, fps=30, kbps=1500)
    speaker = await publish(engine, clip, "speaker")
    watcher = await watch(engine)
    consumer_id = watcher.consumer_id
    other = await watch(engine)
    start = time.monotonic()
    await until(lambda: watcher.size_since(start) == (1280, 720), 15, "the full picture")
    changes: list[tuple[str, str]] = []
    engine.on_rendition.append(lambda conf, consumer, rendition, reason: changes.append((rendition, reason)))

    pinned = time.monotonic()
    assert engine.set_rendition(consumer_id, "low")
    await until(lambda: watcher.size_since(pinned) == (640, 360), 10, "the low rendition")
    assert other.size_since(pinned) == (1280, 720), "the other point stays on the full picture"
    stats = engine.consumers[consumer_id].stats()
    assert stats["rendition"] == "low" and stats["pinned"] == "low"
    transcoder = engine.renditions.transcoders[CONF]  # type: ignore[union-attr]
    await asyncio.sleep(2)
    low_frames = len(watcher.frames_since(time.monotonic() - 2))
    assert low_frames >= 40, f"{low_frames} frames in 2 s on the low rendition"
    assert transcoder.frames_out > 0 and transcoder.stats()["cpu_seconds"] > 0

    audio_only = time.monotonic()
    engine.set_rendition(consumer_id, "audio")
    await asyncio.sleep(1.0)
    heard_before = watcher.audio_frames
    settled = time.monotonic()
    await asyncio.sleep(2.0)
    assert not watcher.frames_since(settled), "no video on audio only"
    assert watcher.audio_frames - heard_before >= 80, "the audio goes on"
    assert engine.consumers[consumer_id].stats()["rendition"] == "audio"
    # Nobody on the low rendition: the transcoder stops after its idle time (1 s here).
    await until(lambda: CONF not in engine.renditions.transcoders, 5, "the transcoder to stop")  # type: ignore[union-attr]

    back = time.monotonic()
    engine.set_rendition(consumer_id, None)
    await until(lambda: watcher.size_since(back) == (1280, 720), 10, "the full picture again")
    assert changes == [("low", "pin"), ("audio", "pin"), ("full", "pin")]
    assert audio_only < back
    await watcher.close()
    await other.close()
    await speaker.pc.close()



async def test_a_program_no_larger_than_the_low_size_is_forwarded_as_is(engine: MediaEngine) -> None:
    """No upscaling and no transcode: a 320x180 program is the low rendition itself."""
    clip = test_clip(seconds=6, width=320, height=180, fps=30, kbps=300)
    speaker = await publish(engine, clip, "speaker")
    watcher = await watch(engine)
    start = time.monotonic()
    await until(lambda: watcher.size_since(start) == (320, 180), 15, "the full picture")
    pinned = time.monotonic()
    assert engine.set_rendition(watcher.consumer_id, "low")
    transcoder = engine.renditions.transcoders[CONF]  # type: ignore[union-attr]
    await until(lambda: transcoder.passthrough and transcoder.frames_out > 30, 10, "the program forwarded on the low track")
    assert engine.consumers[watcher.consumer_id].stats()["rendition"] == "low"
    await asyncio.sleep(2)
    frames = watcher.frames_since(time.monotonic() - 2)
    assert len(frames) >= 40, f"{len(frames)} frames in 2 s on the low track"
    assert watcher.size_since(pinned) == (320, 180), "never upscaled"
    stats = transcoder.stats()
    assert stats["passthrough"] and stats["frames_in"] >= stats["frames_out"] > 0
    await watcher.close()
    await speaker.pc.close()
