"""Decode timestamps of recorded video: B-frame streams (pts out of decode order) and their raw RTP
clock, which steps back and wraps, without a server (the WHIP path is in test_recording_bframes)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from media.recording import h264
from media.recording.recorder import PLAYLIST, Recorder
from media.recording.timestamps import DecodeClock, RtpUnwrapper
from tests.support.bframe_clip import bframe_clip
from bench.clip import test_clip
from bench.rtp_clip import RtpPublisher
from tests.support.hls_probe import ffprobe


def _feed_rtp(recorder: Recorder, video: list[tuple[int, bytes]], seconds: float) -> None:
    """Video only, in the given (decode) order, each frame's pts as its RTP timestamp from an origin
    that wraps 32 bits within the first second, as the Router hands the packets over."""
    publisher = RtpPublisher(kinds=("video",)).join(recorder, {})
    frames = [(n / 30, pts, data) for n, (pts, data) in enumerate(video) if pts < seconds * 90000]
    publisher.send(recorder.reader, publisher.video(frames))
    recorder.stop()


def _check_recording(directory: Path, frames: int, decode_order_is_true: bool = True) -> list[dict]:
    """Every frame muxed with growing dts and pts at or after it; if the stream's pictures really are
    in the order its timestamps say, it also decodes cleanly and is shown in timestamp order."""
    packets = ffprobe(directory / PLAYLIST, "packet=pts,dts", "-select_streams", "v")["packets"]
    assert len(packets) == frames
    dts = [int(p["dts"]) for p in packets]
    pts = [int(p["pts"]) for p in packets]
    assert all(b > a for a, b in zip(dts, dts[1:])), dts
    assert all(p >= d for p, d in zip(pts, dts))
    if not decode_order_is_true:
        return packets
    decode = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(directory / PLAYLIST), "-f", "null", "-"],
        capture_output=True, text=True, timeout=120,
    )
    assert decode.returncode == 0 and not decode.stderr.strip(), decode.stderr[-2000:]
    shown = ffprobe(directory / PLAYLIST, "frame=pts", "-select_streams", "v")["frames"]
    times = [int(f["pts"]) for f in shown]
    assert len(times) == frames and all(b > a for a, b in zip(times, times[1:]))
    return packets


def test_sps_reorder_depth_of_a_bframe_stream() -> None:
    clip, plain = bframe_clip(), test_clip()
    sps = h264.parse_sps(h264.inspect(clip.video[0][2]).sps)  # type: ignore[arg-type]
    # x264 with two B-frames and its default B-pyramid: a B-frame may be shown before two others
    assert (sps.profile_idc, sps.reorder_frames, sps.frame_ticks) == (77, 2, 90000 // clip.fps)
    assert h264.parse_sps(h264.inspect(plain.video[0][2]).sps).reorder_frames == 0  # type: ignore[arg-type]


def test_bframe_clip_is_recorded_with_decode_timestamps(tmp_path: Path) -> None:
    clip = bframe_clip()
    recorder = Recorder("r", "c", tmp_path / "rec", segment_seconds=2.0)
    _feed_rtp(recorder, [(pts, data) for pts, _key, data in clip.video], 4.0)
    assert recorder.stats.runs == 1 and recorder.stats.dropped_frames == 0
    packets = _check_recording(tmp_path / "rec", 4 * clip.fps)
    assert recorder.duration == pytest.approx(4.0, abs=0.05)
    # The composition offsets are the encoder's own: pts - dts equal to x264's for every frame.
    offsets = [int(p["pts"]) - int(p["dts"]) for p in packets]
    expected = [pts - dts for (pts, _k, _d), dts in zip(clip.video, clip.video_dts)][: len(offsets)]
    assert offsets == expected


def test_a_stream_reordering_deeper_than_its_sps_restarts_deep_enough(tmp_path: Path) -> None:
    """The plain clip's SPS promises no reordering; swap the timestamps of two frames in every
    second: the recorder must notice, restart at the next keyframe with room for it, and never write
    a dts after a pts. (A decoder trusts the SPS and shows these two in decode order: the stream
    lies, so only the muxing is checked.)"""
    clip = test_clip()
    video = [(i * 3000, data) for i, (_pts, _key, data) in enumerate(clip.video)]
    for first in range(5, len(video) - 1, clip.fps):
        (a, da), (b, db) = video[first], video[first + 1]
        video[first], video[first + 1] = (b, da), (a, db)
    recorder = Recorder("r", "c", tmp_path / "rec", segment_seconds=2.0)
    _feed_rtp(recorder, video, 4.0)
    assert recorder.stats.reorder_restarts == 1 and recorder.stats.runs == 2
    # The first run up to the swap (frames 0-5), then from the keyframe at 1 s with one frame of delay.
    _check_recording(tmp_path / "rec", 6 + 3 * clip.fps, decode_order_is_true=False)


def test_rtp_unwrapper_and_decode_clock() -> None:
    unwrap = RtpUnwrapper(0)
    assert [unwrap(t) for t in (0, 9000, 3000, 6000, 12000)] == [0, 9000, 3000, 6000, 12000]
    wrap = RtpUnwrapper((1 << 32) - 6000)  # B-frames on both sides of the wrap
    assert [wrap(t) for t in ((1 << 32) - 3000, 3000, 0, 6000)] == [3000, 9000, 6000, 12000]
    late = RtpUnwrapper(9000)  # anchored at a sender report after the first frames
    assert [late(t) for t in (3000, 6000, 12000)] == [-6000, -3000, 3000]
    clock = DecodeClock(2, 3000)
    pts = [6000, 15000, 9000, 12000, 24000, 18000, 21000]
    assert [clock.next(p) for p in pts] == [0, 3000, 6000, 9000, 12000, 15000, 18000]
    shallow = DecodeClock(0, 3000)
    assert [shallow.next(p) for p in (0, 6000)] == [0, 6000]
    assert shallow.next(3000) is None and shallow.shortfall(3000) == 1


@pytest.fixture(autouse=True)
def _no_stray_dirs(tmp_path: Path):  # type: ignore[no-untyped-def]
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)
