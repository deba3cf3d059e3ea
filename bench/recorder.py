"""Recorder CPU benchmark: one 720p30 2 Mbit/s H.264 + Opus stream through the HLS recorder.

The test clip's packets are handed to a :class:`Recorder` exactly as aiortc's receiver threads hand
them over (a leg called with ``JitterFrame``-like objects), as fast as the writer keeps up, and the
process CPU time is divided by the media duration. Everything the recorder does per stream is
counted: NAL inspection, fragmented-MP4 muxing (no video re-encode), Opus decode + AAC encode,
segment and playlist files. Target: under 5 % of one core.

``python -m bench.recorder [--quick]`` prints the numbers; ``run(quick)`` returns them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from media.recording.playlist import parse
from media.recording.recorder import PLAYLIST, Recorder
from bench.clip import test_clip


@dataclass
class _Frame:
    data: bytes
    timestamp: int


def _schedule(seconds: float) -> list[tuple[float, str, str, _Frame]]:
    """The clip looped to ``seconds``, as (time, kind, codec, frame) in arrival order."""
    clip = test_clip()
    items: list[tuple[float, str, str, _Frame]] = []
    loops = int(seconds // clip.duration) + 1
    video_step, audio_step = 90000 // clip.fps, 960
    vts = ats = 0
    for _ in range(loops):
        for _pts, _key, data in clip.video:
            items.append((vts / 90000, "video", "video/h264", _Frame(data, vts)))
            vts += video_step
        for _pts, data in clip.audio:
            items.append((ats / 48000, "audio", "audio/opus", _Frame(data, ats)))
            ats += audio_step
    items.sort(key=lambda i: i[0])
    return [i for i in items if i[0] < seconds]


def run(quick: bool = False) -> dict:
    seconds = 20.0 if quick else 120.0
    items = _schedule(seconds)
    clip = test_clip()
    workdir = Path(tempfile.mkdtemp(prefix="bench-recorder-"))
    try:
        cpu0, wall0 = time.process_time(), time.monotonic()
        recorder = Recorder("bench", "bench", workdir / "rec", segment_seconds=2.0)
        leg = recorder.new_leg()
        recorder.bind(leg, {"audio", "video"}, lambda: None)
        recorder.set_sync(leg, 0.0)
        for _t, kind, codec, frame in items:
            while recorder._queue.qsize() > 500:  # stay far below the drop threshold
                time.sleep(0.001)
            leg(kind, codec, frame)
        recorder.stop()
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        segments, ended = parse((workdir / "rec" / PLAYLIST).read_text())
        recorded = sum(s.duration for s in segments)
        return {
            "stream": f"{clip.width}x{clip.height}@{clip.fps} H.264 {clip.video_bitrate / 1e6:.2f} Mbit/s + Opus",
            "media_seconds": round(seconds, 2),
            "recorded_seconds": round(recorded, 2),
            "segments": len(segments),
            "cpu_seconds": round(cpu, 3),
            "wall_seconds": round(wall, 3),
            "cpu_percent_of_core": round(100 * cpu / seconds, 2),
            "target_percent": 5.0,
            "dropped": recorder.stats.dropped_queue + recorder.stats.dropped_frames,
            "playlist_ended": ended,
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 s of media instead of 120 s")
    print(json.dumps(run(parser.parse_args().quick), indent=2))


if __name__ == "__main__":
    main()
