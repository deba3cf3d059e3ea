"""Media checks for the recording tests: ffprobe as JSON, and where the test clip's tone begins."""

from __future__ import annotations

import array
import json
import math
import subprocess
from pathlib import Path

import av


def ffprobe(target: str | Path, entries: str, *extra: str) -> dict:
    """``ffprobe -show_entries <entries>`` (e.g. ``stream=codec_name:format=duration``) as a dict."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", *extra, "-of", "json", "-show_entries", entries, str(target)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, f"ffprobe rejected {target}: {out.stderr[-2000:]}"
    return json.loads(out.stdout)


def streams(target: str | Path) -> dict[str, dict]:
    info = ffprobe(target, "stream=codec_name,codec_type,width,height,channels,bit_rate,start_time,duration")
    return {s["codec_type"]: s for s in info["streams"]}


def duration(target: str | Path) -> float:
    return float(ffprobe(target, "format=duration")["format"]["duration"])


def tone_onset(target: str | Path, threshold: float = 0.05, limit: float = 10.0) -> float | None:
    """Seconds from the start of the first stream to the first audio frame with RMS above
    ``threshold`` (the clip's 440 Hz tone is about 0.17 RMS; silence is 0)."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
    with av.open(str(target)) as container:
        audio = container.streams.audio[0]
        starts = [s.start_time * s.time_base for s in container.streams if s.start_time is not None]
        origin = float(min(starts)) if starts else 0.0
        for frame in container.decode(audio):
            t = float(frame.pts * frame.time_base) - origin
            if t > limit:
                return None
            for mono in resampler.resample(frame):
                samples = array.array("h", bytes(mono.planes[0])[: mono.samples * 2])
                if samples and math.sqrt(sum(x * x for x in samples) / len(samples)) / 32768 > threshold:
                    return t
    return None
