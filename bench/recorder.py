"""Recorder CPU benchmark: one 720p30 2 Mbit/s H.264 + Opus stream through the HLS recorder.

The test clip's RTP packets are handed to a :class:`Recorder`'s reader exactly as a conference Router
hands them over, as fast as the writer keeps up, and the process CPU time is divided by the media
duration. Everything the recorder does per stream is counted: the reader's enqueueing, reassembly
of frames from packets, NAL inspection, fragmented-MP4 muxing (no video re-encode), Opus decode +
AAC encode, segment and playlist files. Target: under 5 % of one core.

``python -m bench.recorder [--quick]`` prints the numbers; ``run(quick)`` returns them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from media.recording.playlist import parse
from media.recording.recorder import PLAYLIST, Recorder
from bench.clip import test_clip
from bench.rtp_clip import RtpPublisher


def run(quick: bool = False) -> dict:
    seconds = 20.0 if quick else 120.0
    clip = test_clip()
    publisher = RtpPublisher()
    packets = publisher.clip(clip, seconds)  # the clip looped to ``seconds``, in send order
    workdir = Path(tempfile.mkdtemp(prefix="bench-recorder-"))
    try:
        cpu0, wall0 = time.process_time(), time.monotonic()
        recorder = Recorder("bench", "bench", workdir / "rec", segment_seconds=2.0)
        publisher.join(recorder)
        on_packet = recorder.reader.on_packet
        for _at, source, seq, ts, marker, payload in packets:
            while recorder.backlog > 1500:  # stay far below the drop threshold
                time.sleep(0.001)
            on_packet(source, seq, ts, marker, payload, False)
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
            "dropped": recorder.reader.dropped + recorder.stats.dropped_frames,
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
