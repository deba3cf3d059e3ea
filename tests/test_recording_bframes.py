"""A publisher that sends B-frames (x264 Main, two B-frames, as OBS can) is recorded correctly.

The clip's packets go out unchanged over WHIP from a real aiortc peer: in decode order, each with its
own presentation time as RTP timestamp. The recording must then decode without errors, with decode
timestamps that only grow, every pts at or after its dts, and its pictures presented in the order
they were filmed (the clip's gradient moves six pixels per frame).
"""

from __future__ import annotations

import asyncio
import subprocess

import av
import httpx
import pytest

from tests.support.bframe_clip import bframe_clip, publish_reordered
from tests.support.hls_probe import ffprobe
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out

SECONDS = 8.0


def _gradient_shift(frame: av.VideoFrame) -> int:
    """Where the clip's gradient wraps on the bottom row (the noise block never reaches it)."""
    luma = frame.planes[0]
    start = (frame.height - 1) * luma.line_size
    row = bytes(luma)[start : start + frame.width]
    drops = [a - b for a, b in zip(row, row[1:])]
    return drops.index(max(drops))


async def _publish(server: ServerProcess, conference: str, token: str) -> float:
    clip = bframe_clip()
    publisher = await publish_reordered(server.url, conference, token, clip)
    try:
        await wait_until_async(lambda: publisher.video.sent >= SECONDS * clip.fps, SECONDS + 15, "the clip sent")
    finally:
        await publisher.close()
    return publisher.video.sent / clip.fps


def test_bframe_publisher_is_recorded_in_decode_order(server: ServerProcess) -> None:
    conference = server.create_conference("B-frames")
    sent = asyncio.run(_publish(server, conference, server.token(conference, "speaker")))
    with server.admin() as c:
        r = c.post(f"/api/v1/conferences/{conference}/recording/stop")
        assert r.status_code == 200, r.text
        detail = c.get(f"/api/v1/recordings/{r.json()['id']}").json()
    url = server.url + detail["playlist_url"]
    assert httpx.get(url, timeout=10).status_code == 200

    packets = ffprobe(url, "packet=pts,dts", "-select_streams", "v")["packets"]
    assert len(packets) >= 0.8 * sent * 30, (len(packets), sent)
    dts = [int(p["dts"]) for p in packets]
    pts = [int(p["pts"]) for p in packets]
    assert all(b > a for a, b in zip(dts, dts[1:])), "decode timestamps must only grow"
    assert all(p >= d for p, d in zip(pts, dts)), "a picture cannot be shown before it is decoded"
    assert any(b < a for a, b in zip(pts, pts[1:])), "the B-frames were kept (pts reordered)"
    assert detail["duration_seconds"] < sent + 2, detail

    decode = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", url, "-map", "0:v", "-f", "null", "-"],
        capture_output=True, text=True, timeout=120,
    )
    assert decode.returncode == 0 and not decode.stderr.strip(), decode.stderr[-2000:]

    # Presentation order: every picture follows the one filmed before it (the clip restarts from its
    # first frame when it loops, and skips ahead to a keyframe when the server asks for one).
    with av.open(url) as container:
        frames = list(container.decode(video=0))
    times = [f.pts for f in frames]
    assert all(b > a for a, b in zip(times, times[1:])), "frames come out in presentation order"
    shifts = [_gradient_shift(f) for f in frames]
    steps = [(a - b) % 640 for a, b in zip(shifts, shifts[1:])]
    in_order = sum(1 for s in steps if 4 <= s <= 8)
    assert in_order >= 0.9 * len(steps), steps
