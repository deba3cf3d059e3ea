"""The floor in the media plane (media.floor): a point in dialogue with the hall, on a real engine
with real aiortc peers over loopback.

Every subscriber switches to the point's picture without a new WHEP session and hears one mix of
the hall and the point; the hall's own playback hears the point alone; the chair's mute leaves the
point's voice out; ending the floor or cutting the point's link brings the speaker back; the
recording follows the program. The server's floor (who may publish, the queue) is tested in
tests/test_floor_api.py; the whole chain through the server in tests/test_floor_e2e.py.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from bench.clip import test_clip
from bench.whip_publisher import NO_ICE, clip_peer
from media.engine import EngineConfig, MediaEngine
from media.recording.manager import RecordingManager
from media.recording.remux import remux_to_mp4
from tests.support.hls_probe import streams
from tests.support.program_probe import (
    DARK, HALL_TONE, POINT_LUMA, POINT_TONE, ProgramWatcher, decoding_peers, heard, mean_luma, tone_levels,
)
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.slow

CONF = "floor-conf"


@pytest.fixture(scope="module")
def clips():
    speaker = test_clip(seconds=6, width=320, height=180, fps=30, kbps=400)
    point = test_clip(seconds=6, width=320, height=180, fps=30, kbps=400, tone=POINT_TONE, luma=POINT_LUMA)
    return speaker, point


class Peer:
    """A publisher's aiortc peer connection and its producer on the engine."""

    def __init__(self, pc: RTCPeerConnection, producer) -> None:  # type: ignore[no-untyped-def]
        self.pc = pc
        self.producer = producer

    def cut(self) -> None:
        """The link drops: the peer's sockets close, no DTLS close, no BYE."""
        for transceiver in self.pc.getTransceivers():
            connection = transceiver.sender.transport.transport._connection
            for protocol in connection._protocols:
                protocol.transport.close()


async def publish(engine: MediaEngine, clip, role: str, subject_id: str | None = None) -> Peer:  # type: ignore[no-untyped-def]
    """The clip published straight to the engine (its offer and answer, no HTTP)."""
    pc = clip_peer(clip).pc
    await pc.setLocalDescription(await pc.createOffer())
    producer = await engine.publish(CONF, pc.localDescription.sdp, role=role, subject_id=subject_id)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=producer.answer_sdp, type="answer"))
    return Peer(pc, producer)


async def watch(engine: MediaEngine, role: str = "point", subject_id: str | None = None) -> ProgramWatcher:
    pc = RTCPeerConnection(NO_ICE)
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    watcher = ProgramWatcher(pc)
    watcher.attach()
    await pc.setLocalDescription(await pc.createOffer())
    consumer = await engine.subscribe(CONF, pc.localDescription.sdp, role=role, subject_id=subject_id)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=consumer.answer_sdp, type="answer"))
    watcher.consumer_id = consumer.id
    return watcher


async def until(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    """Until ``check()`` is True."""
    await wait_until_async(check, timeout, what, check=lambda v: v is True, interval=0.05)


async def hears(watcher: ProgramWatcher, hall: bool, point: bool, what: str, timeout: float = 10.0) -> None:
    """Until the watcher's last second of sound has the hall's tone iff ``hall`` and the point's
    iff ``point`` (a loaded machine delays the decoded sound by seconds)."""
    def check() -> bool:
        levels = watcher.tones()
        return heard(levels, HALL_TONE) == hall and heard(levels, POINT_TONE) == point
    try:
        await wait_until_async(check, timeout, what, interval=0.25)
    except AssertionError:
        raise AssertionError(f"{what}: tone levels {watcher.tones()}") from None


@pytest.fixture
async def engine(tmp_path: Path):
    engine = MediaEngine(EngineConfig(ice_host_addresses=["127.0.0.1"]))
    decoding_peers()  # the test's subscribers decode what they get (they stand for other machines)
    engine.start()
    yield engine
    await engine.shutdown()


async def test_dialogue_switch_mix_return_and_back(engine: MediaEngine, clips, tmp_path: Path) -> None:
    speaker_clip, point_clip = clips
    manager = RecordingManager(tmp_path / "rec", new_id=lambda: "rec1", segment_seconds=1.0)
    engine.on_producer.append(manager.on_producer)
    speaker = await publish(engine, speaker_clip, "speaker")
    a, b = await watch(engine), await watch(engine)
    hall = await watch(engine, role="speaker")  # the hall's own playback
    own = await watch(engine, subject_id="point-7")  # the asking point's own playback
    for w in (a, b):
        await until(lambda w=w: w.showing_point() is False, 15, "the speaker's picture")
    await hears(a, hall=True, point=False, what="the speaker alone")
    assert not heard(hall.tones(), HALL_TONE), "the hall must not hear itself before a dialogue"
    consumers = set(engine.consumers)
    # The recording has placed the speaker (its sender reports came): a floor granted before that
    # would be recorded ahead of the speaker's first frames (they wait for their clocks).
    await until(lambda: manager.active(CONF) is not None and manager.active(CONF).stats.runs >= 1, 10,  # type: ignore[union-attr]
                "the recording's first run")

    granted = time.monotonic()
    point = await publish(engine, point_clip, "point", subject_id="point-7")
    for w in (a, b, hall):
        await until(lambda w=w: w.showing_point(granted) is True, 15, f"the point's picture ({engine.stages[CONF].stats()})")
    assert set(engine.consumers) == consumers, "no subscriber re-signalled"
    stage = engine.stages[CONF]
    assert stage.on_air and stage.mix is not None
    for w in (a, b):
        await hears(w, hall=True, point=True, what="the dialogue's mix")
    await hears(hall, hall=False, point=True, what="the hall's return: the point alone")
    await hears(own, hall=True, point=False, what="the point hears the hall, not itself")

    engine.mute_floor(CONF, True)
    await hears(a, hall=True, point=False, what="the mix with the point muted")
    hall.audio.clear()  # the hall's return goes quiet: nothing new may carry the point's voice
    await asyncio.sleep(1.5)
    assert not heard(hall.tones(), POINT_TONE), hall.tones()
    engine.mute_floor(CONF, False)
    await hears(a, hall=True, point=True, what="the mix unmuted")

    ended = time.monotonic()
    await engine.end_floor(CONF)
    assert point.producer.closed
    for w in (a, b):
        await until(lambda w=w: w.showing_point(ended) is False, 10, "the speaker's picture again")
    await hears(a, hall=True, point=False, what="the speaker alone again")
    await hears(own, hall=True, point=False, what="the point back on the program")
    assert stage.mix is None and not stage.on_air
    assert engine.routers[CONF].active["return"] is None

    live = manager.active(CONF)
    assert live is not None
    # speaker, point, speaker: the writer thread may lag the program on a loaded machine
    await until(lambda: live.stats.runs >= 3 and live.stats.frames_video > 0, 15, f"three runs ({live.stats})")
    await asyncio.sleep(1.0)  # a second of the speaker's run
    recorder = await manager.stop(CONF)
    assert recorder is live
    mp4 = remux_to_mp4(recorder.directory / "index.m3u8", tmp_path / "rec.mp4")
    assert set(streams(mp4)) == {"video", "audio"}
    pictures = recorded_pictures(mp4)
    assert pictures[0] == "speaker" and "point" in pictures and pictures[-1] == "speaker", pictures
    # The dialogue's sound is in the recording: both tones where the point's picture is (in some
    # second of it: the point was muted for a while).
    start, end = point_span(mp4)
    samples = recorded_audio(mp4, start, end)
    seconds = [tone_levels(samples[i : i + 48000]) for i in range(0, len(samples) - 48000 + 1, 24000)]
    assert any(heard(levels, HALL_TONE) and heard(levels, POINT_TONE) for levels in seconds), seconds
    for w in (a, b, hall, own):
        await w.close()
    await speaker.pc.close()
    await point.pc.close()


async def test_point_link_cut_falls_back_within_3_s(engine: MediaEngine, clips) -> None:
    speaker_clip, point_clip = clips
    speaker = await publish(engine, speaker_clip, "speaker")
    a = await watch(engine)
    await until(lambda: a.showing_point() is False, 15, "the speaker's picture")
    states: list[str] = []
    engine.on_floor.append(lambda conf, producer, state: states.append(state))
    point = await publish(engine, point_clip, "point", subject_id="point-9")
    granted = time.monotonic()
    await until(lambda: a.showing_point(granted) is True, 10, "the point's picture")
    cut = time.monotonic()
    point.cut()
    await until(lambda: a.showing_point(cut) is False, 6, "the speaker's picture after the cut")
    back = a.first_switch(cut, to_point=False)
    assert back is not None and back - cut < 3.0, f"fell back after {back - cut:.2f} s"  # type: ignore[operator]
    assert states == ["live", "stalled"]
    assert not point.producer.closed, "a stalled point keeps its session (its packets may resume)"
    await a.close()
    await speaker.pc.close()
    await point.pc.close()


def recorded_pictures(mp4: Path, at_least: int = 10) -> list[str]:
    """The recording's pictures in order: runs of ``at_least`` frames of one publisher, collapsed
    (a frame or two a decoder shows grey or black after a cut does not make a run)."""
    runs: list[list] = []
    with av.open(str(mp4)) as container:
        for frame in container.decode(container.streams.video[0]):
            who = "point" if mean_luma(frame) < DARK else "speaker"
            if runs and runs[-1][0] == who:
                runs[-1][1] += 1
            else:
                runs.append([who, 1])
    seen: list[str] = []
    for who, count in runs:
        if count >= at_least and (not seen or seen[-1] != who):
            seen.append(who)
    return seen


def point_span(mp4: Path) -> tuple[float, float]:
    """Seconds (from the start) of the first and last frames showing the point."""
    times = []
    with av.open(str(mp4)) as container:
        stream = container.streams.video[0]
        origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        for frame in container.decode(stream):
            if mean_luma(frame) < DARK:
                times.append(float(frame.pts * frame.time_base) - origin)
    assert times, "the point is not in the recording"
    return times[0], times[-1]


def recorded_audio(mp4: Path, start: float, end: float) -> np.ndarray:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
    out: list[np.ndarray] = []
    with av.open(str(mp4)) as container:
        video = container.streams.video[0]
        origin = float(video.start_time * video.time_base) if video.start_time is not None else 0.0
        for frame in container.decode(container.streams.audio[0]):
            t = float(frame.pts * frame.time_base) - origin
            if start <= t <= end:
                for mono in resampler.resample(frame):
                    out.append(mono.to_ndarray().reshape(-1))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int16)
