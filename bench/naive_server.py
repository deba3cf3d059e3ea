"""The naive aiortc fan-out, for comparison: ``MediaRelay`` feeding one ``RTCRtpSender`` per subscriber.

This is what aiortc offers out of the box for pre-encoded media: the clip's ``av.Packet``s go through
``aiortc.contrib.media.MediaRelay`` (one proxy track per subscriber, default ``buffered=True``) into
each subscriber's ``RTCRtpSender``, which re-packetizes (``H264Encoder.pack``), builds an
``RtpPacket`` with header extensions, serializes, SRTP-protects and sends it, per subscriber. Nothing
is decoded or encoded. It answers WHEP offers over plain HTTP (no auth) on 127.0.0.1.

The source plays the same clip in real time inside this process (there is no ingest here; the raw
server's ingest cost is in its numbers, this one's is not).

Two additions, both outside the per-packet path, so its numbers are comparable with the relay's:
* sender reports map RTP time to the wall clock at which the *source* produced the frame (stock
  aiortc maps it to when this subscriber's sender sent it), so the subscriber-side delay includes
  the time a frame waits in MediaRelay's queue, as the relay's includes its forwarding;
* the source counts, with a reference ``pack()``, how many RTP packets each frame makes, which is
  the "publisher rate" the subscribers are compared with.
PLI from subscribers is ignored, as aiortc's packet path does: a new subscriber waits for the clip's
next keyframe (every 2 s).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.codecs import get_encoder
from aiortc.contrib.media import MediaRelay
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RtcpSrPacket

from bench import ipc
from media.core.source import NTP_EPOCH_OFFSET
from media.transport.ice import restrict_host_addresses



class Source:
    """The clip's two tracks plus what the benchmark needs to know about them."""

    def __init__(self, clip: Any) -> None:
        from bench.whip_publisher import ClipTrack

        self.window: dict[str, tuple[float, float]] = {}
        self.in_window = {"video": 0, "audio": 0}
        self.produced: dict[str, dict[int, float]] = {"video": {}, "audio": {}}
        self.paused = asyncio.Event()
        self.mono_to_wall = time.time() - time.monotonic()
        source = self

        class SourceTrack(ClipTrack):
            async def recv(self):  # type: ignore[no-untyped-def]
                if source.paused.is_set():
                    await asyncio.Event().wait()  # "the publisher left": no more frames
                packet = await super().recv()
                source.on_frame(self, packet)
                return packet

        self.video = SourceTrack("video", clip)
        self.audio = SourceTrack("audio", clip)
        self.clocks = {"video": 90000, "audio": 48000}
        self._ref_video = None

    def on_frame(self, track: Any, packet: Any) -> None:
        kind = track.kind
        now = time.time()
        produced = self.produced[kind]
        produced[packet.pts] = now
        if len(produced) > 400:
            for pts in list(produced)[:100]:
                del produced[pts]
        w = self.window.get(kind)
        if w is not None:
            due = self.mono_to_wall + track.start + packet.pts / self.clocks[kind]
            if w[0] <= due < w[1]:
                if kind == "video":
                    if self._ref_video is None:
                        self._ref_video = get_encoder(_h264())
                    self.in_window["video"] += len(self._ref_video.pack(packet)[0])
                else:
                    self.in_window["audio"] += 1

    def starts(self) -> dict[str, float | None]:
        return {
            k: (self.mono_to_wall + t.start if t.start is not None else None)
            for k, t in (("video", self.video), ("audio", self.audio))
        }


def _h264():  # type: ignore[no-untyped-def]
    return next(c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType.lower() == "video/h264")


class LastPts(MediaStreamTrack):
    """Wraps a subscriber's relay proxy to remember the pts of the last frame its sender took."""

    def __init__(self, proxy: MediaStreamTrack) -> None:
        super().__init__()
        self.kind = proxy.kind
        self.proxy = proxy
        self.last_pts: int | None = None

    async def recv(self):  # type: ignore[no-untyped-def]
        packet = await self.proxy.recv()
        self.last_pts = packet.pts
        return packet

    def stop(self) -> None:
        super().stop()
        self.proxy.stop()


def _map_sender_reports(sender: RTCRtpSender, track: LastPts, source: Source, kind: str) -> None:
    """Make the sender's SRs map its RTP timestamps to when the source produced the frame."""
    original = sender._send_rtcp

    async def send_rtcp(packets: list) -> None:
        pts = track.last_pts
        produced = source.produced[kind].get(pts) if pts is not None else None
        if produced is not None:
            for p in packets:
                if isinstance(p, RtcpSrPacket):
                    # The SR's RTP timestamp is that of the last packet sent, i.e. of frame ``pts``
                    # (the sender never suspends between taking a frame and sending its packets).
                    p.sender_info.ntp_timestamp = int((produced + NTP_EPOCH_OFFSET) * (1 << 32))
        await original(packets)

    sender._send_rtcp = send_rtcp  # type: ignore[method-assign]


async def _run(conn: Any, port: int, clip_args: dict) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from bench.clip import test_clip

    source = Source(test_clip(**clip_args))
    relay = MediaRelay()
    pcs: dict[int, RTCPeerConnection] = {}
    counter = {"n": 0, "failed": 0}

    async def whep(request: Request) -> Response:
        offer = (await request.body()).decode()
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        counter["n"] += 1
        sid = counter["n"]
        pcs[sid] = pc

        @pc.on("connectionstatechange")
        async def _state() -> None:
            if pc.connectionState in ("failed", "closed"):
                pcs.pop(sid, None)
                await pc.close()

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            for t in pc.getTransceivers():
                src = source.video if t.kind == "video" else source.audio
                track = LastPts(relay.subscribe(src))
                sender = pc.addTrack(track)
                _map_sender_reports(sender, track, source, t.kind)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:  # noqa: BLE001
            counter["failed"] += 1
            pcs.pop(sid, None)
            await pc.close()
            return Response(f"cannot negotiate: {exc}", status_code=400)
        return Response(
            pc.localDescription.sdp,
            status_code=201,
            media_type="application/sdp",
            headers={"Location": f"/whep/{request.path_params['conf']}/{sid}"},
        )

    async def health(request: Request) -> Response:
        return Response("ok")

    app = Starlette(routes=[Route("/whep/{conf}", whep, methods=["POST"]), Route("/healthz", health)])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # the orchestrator stops us
    serve_task = asyncio.ensure_future(server.serve())

    async def handle(m: dict) -> dict:
        op = m["op"]
        if op == "status":
            return {"started": server.started, "pcs": len(pcs), "failed": counter["failed"], "starts": source.starts(),
                    "steps": {"video": 1 / 30, "audio": 0.02}}
        if op == "window":
            source.window = {k: tuple(v) for k, v in m["kinds"].items()}
            return {}
        if op == "collect":
            return {"in_window": dict(source.in_window), "pcs": len(pcs)}
        if op == "pause":
            loop.call_soon_threadsafe(source.paused.set)
            return {}
        raise ValueError(f"unknown op {op}")

    # The orchestrator's calls are answered on a thread with its own event loop (the handlers only read
    # and set plain fields): at N=100 the naive path saturates this loop, which is what is measured, and
    # a call queued behind it missed the orchestrator's 30 s timeout, failing the row.
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def control() -> None:
        try:
            asyncio.run(ipc.serve(conn, handle))
        finally:
            loop.call_soon_threadsafe(done.set)

    threading.Thread(target=control, name="control", daemon=True).start()
    try:
        await done.wait()
    finally:
        server.should_exit = True
        for pc in list(pcs.values()):
            try:
                await asyncio.wait_for(pc.close(), 2)
            except Exception:  # noqa: BLE001
                pass
        try:
            await asyncio.wait_for(serve_task, 5)
        except Exception:  # noqa: BLE001
            pass


def main(conn: Any, port: int, clip_args: dict) -> None:
    ipc.child_setup()
    restrict_host_addresses(["127.0.0.1"])
    asyncio.run(_run(conn, port, clip_args))

