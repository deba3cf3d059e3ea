"""The benchmark's publisher process: one aiortc WHIP publisher sending the pre-encoded clip.

It reuses ``bench.whip_publisher.publish`` (H.264 + Opus packets sent as they are, PLI honoured by
skipping to the clip's next keyframe) and counts what it sends: per kind, the RTP packets of the
frames whose *due time* falls inside the measurement window (retransmissions excluded), and how late
each frame actually left compared with its due time (the delay measurement starts at the send).
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from typing import Any

from aiortc.rtp import is_rtcp

from bench import ipc
from media.transport.ice import restrict_host_addresses


class Counter:
    def __init__(self) -> None:
        self.window: dict[str, tuple[float, float]] = {}
        self.sent = {"video": 0, "audio": 0}
        self.in_window = {"video": 0, "audio": 0}
        self.frames_in_window = {"video": 0, "audio": 0}
        self.lateness: list[float] = []  # video frames in the window: actual send - due, seconds
        self._last_due = {"video": -1.0, "audio": -1.0}


async def _run(conn: Any, url: str, conference: str, token: str, clip_args: dict) -> None:
    from bench.clip import test_clip
    from bench.whip_publisher import publish

    clip = test_clip(**clip_args)
    pub = await publish(url, conference, token, clip)
    counter = Counter()
    tracks = {"video": pub.video, "audio": pub.audio}
    clocks = {"video": 90000, "audio": 48000}
    ssrc_kind: dict[int, str] = {}
    for t in pub.pc.getTransceivers():
        ssrc_kind[t.sender._ssrc] = t.kind  # RTX uses another SSRC: retransmissions are not counted
    dtls = pub.pc.getTransceivers()[0].sender.transport
    original_send = dtls._send_rtp
    # ClipTrack paces on time.monotonic(); the window is in wall-clock time.
    mono_to_wall = time.time() - time.monotonic()

    async def send_rtp(data: bytes) -> None:
        if not is_rtcp(data) and len(data) >= 12:
            kind = ssrc_kind.get(struct.unpack_from("!I", data, 8)[0])
            if kind is not None:
                track = tracks[kind]
                # The sender sends a frame's packets right after recv() returned it: out_pts has
                # already moved one step past that frame.
                due = mono_to_wall + track.start + float((track.out_pts - track.step) / clocks[kind])
                counter.sent[kind] += 1
                w = counter.window.get(kind)
                if w is not None and w[0] <= due < w[1]:
                    counter.in_window[kind] += 1
                    if due != counter._last_due[kind]:
                        counter._last_due[kind] = due
                        counter.frames_in_window[kind] += 1
                        if kind == "video":
                            counter.lateness.append(time.time() - due)
        await original_send(data)

    dtls._send_rtp = send_rtp

    async def handle(m: dict) -> dict:
        op = m["op"]
        if op == "status":
            starts = {
                k: (mono_to_wall + t.start if t.start is not None else None) for k, t in tracks.items()
            }
            return {
                "state": pub.pc.connectionState,
                "sent": dict(counter.sent),
                "starts": starts,
                "steps": {k: float(t.step / clocks[k]) for k, t in tracks.items()},
                "keyframe_requests": pub.video.keyframe_requests,
            }
        if op == "window":
            counter.window = {k: tuple(v) for k, v in m["kinds"].items()}
            return {}
        if op == "collect":
            late = sorted(counter.lateness)

            def pct(p: float) -> float | None:
                return late[min(len(late) - 1, int(p * len(late)))] if late else None

            return {
                "in_window": counter.in_window,
                "frames_in_window": counter.frames_in_window,
                "sent": counter.sent,
                "lateness_p50": pct(0.5),
                "lateness_p99": pct(0.99),
                "lateness_max": late[-1] if late else None,
                "keyframe_requests": pub.video.keyframe_requests,
            }
        if op == "stop":
            await asyncio.wait_for(pub.close(), 10)
            return {}
        raise ValueError(f"unknown op {op}")

    try:
        await ipc.serve(conn, handle)
    finally:
        try:
            await asyncio.wait_for(pub.close(), 5)
        except Exception:  # noqa: BLE001
            pass


def main(conn: Any, url: str, conference: str, token: str, clip_args: dict) -> None:
    ipc.child_setup()
    try:
        # A real publisher does not share the server's cores: keep this one punctual on a busy
        # machine (its lateness is measured and reported anyway).
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    except OSError:
        pass
    restrict_host_addresses(["127.0.0.1"])
    asyncio.run(_run(conn, url, conference, token, clip_args))
