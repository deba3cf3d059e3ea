"""Transcoder: the program's low rendition, one decode and one encode per conference.

It reads the router's program video like the recorder does (a reader: it sees exactly what the
points see, switches included) and runs on its own thread: frames are reassembled
(media.recording.reassembly), decoded, scaled to ``width`` x ``height`` and encoded with libx264 at
zero latency (Constrained Baseline, no B-frames), a keyframe wherever the source has one, so both
renditions share the keyframe cadence, and whenever a point on the low rendition asks. The
packets go back to the event loop and into the router as one more source (``source``), a new epoch
whenever the program's picture changes publisher, with the source's RTP timestamps and sender
report (same 90 kHz clock), so lip sync holds for the shared audio.

The low rendition is never larger than the program: a publisher already at or below the low size
(known from its first decoded keyframe) is forwarded into the low track as is, without decoding, and
the low track's keyframe requests go to that publisher.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import threading
import time
from fractions import Fraction

import av
from aiortc.codecs.h264 import H264Encoder
from av.video.frame import PictureType

from media.core.router import Router
from media.core.source import NTP_EPOCH_OFFSET, SourceStream
from media.recording import h264
from media.recording.reassembly import FrameAssembler

log = logging.getLogger(__name__)

CODEC = "video/h264"
QUEUE_PACKETS = 3000  # ~5 s of 720p: a stalled thread drops input instead of growing
IDLE_WAIT = 0.02  # seconds the thread sleeps when it has caught up
FRAME_RATE = 30  # the rate control's frame rate: a hall camera's and the speaker page's (a slower source gets less)


class _Reader:
    """The router's side: packets of the program video onto the thread's inbox (no work on the loop)."""

    def __init__(self, inbox: collections.deque) -> None:
        self.inbox = inbox
        self.dropped = 0

    def on_packet(self, source: SourceStream, seq: int, ts: int, marker: int, payload: bytes, key: bool) -> None:
        if source.kind != "video":
            return
        if len(self.inbox) >= QUEUE_PACKETS:
            self.dropped += 1
            return
        self.inbox.append((source, seq, ts, marker, payload))


class Transcoder:
    def __init__(self, router: Router, width: int = 640, height: int = 360, bitrate: int = 450_000) -> None:
        self.router = router
        self.width, self.height, self.bitrate = width, height, bitrate
        self.source: SourceStream | None = None  # the current output epoch
        self._input: SourceStream | None = None  # ... and the program source it is made from
        self._inbox: collections.deque = collections.deque()
        self.reader = _Reader(self._inbox)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._keyframe = threading.Event()
        self._seq = random.randint(0, 0xFFFF)
        self.frames_in = 0
        self.frames_out = 0
        self.bytes_out = 0
        self.cpu_seconds = 0.0  # the thread's CPU time so far
        self.started_at = 0.0
        self.passthrough = False  # the current program picture is small enough to forward as is

    # --- the loop's side ---------------------------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"transcode-{self.router.conference_id}", daemon=True)
        self._thread.start()
        self.router.add_reader(self.reader)  # the program's picture, from its next keyframe

    def stop(self) -> None:
        self.router.remove_reader(self.reader)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.source is not None:
            self.router.remove_source(self.source)
            self.source = None

    def request_keyframe(self) -> None:
        """A point on the low rendition needs a keyframe (the router merged the requests)."""
        if self.passthrough:
            self.router.request_keyframe(track="video")  # only the publisher can make one
        else:
            self._keyframe.set()

    def stats(self) -> dict:
        running = max(time.monotonic() - self.started_at, 1e-9)
        return {"frames_in": self.frames_in, "frames_out": self.frames_out, "dropped": self.reader.dropped,
                "kbps": round(self.bytes_out * 8 / running / 1000), "bytes_out": self.bytes_out,
                "cpu_seconds": round(self.cpu_seconds, 3), "cpu_share": round(self.cpu_seconds / running, 4),
                "size": f"{self.width}x{self.height}", "passthrough": self.passthrough}

    def _emit(self, input_source: SourceStream, ts: int, payloads: list[bytes], key: bool) -> None:
        """On the loop: one encoded frame into the router."""
        if self._stop.is_set():
            return
        router = self.router
        source = self.source
        if self._input is not input_source:
            if not key:
                return  # a new epoch starts at a keyframe
            if source is not None:
                router.remove_source(source)
            source = self.source = SourceStream("video", CODEC, 90000, input_source.producer_id)
            self._input = input_source
            router.add_source(source, keyframes=self, select=False)
            router.select(source, "low")
        assert source is not None
        if input_source.sr_ntp is not None and source.sr_rtp != input_source.sr_rtp:
            ntp = int((input_source.sr_ntp + NTP_EPOCH_OFFSET) * (1 << 32))
            router.sender_report(source, ntp, input_source.sr_rtp)  # the same 90 kHz clock
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            router.on_rtp(source, self._seq, ts, int(i == last), payload)
            self._seq = (self._seq + 1) & 0xFFFF
        router.flush()

    # --- the thread --------------------------------------------------------------------------------
    def _encoder(self) -> av.VideoCodecContext:
        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height = self.width, self.height
        codec.pix_fmt = "yuv420p"
        codec.time_base = Fraction(1, 90000)
        # x264's rate control spends bit_rate / fps per frame; without a frame rate FFmpeg gives it the
        # time base's (90,000 a second) and each frame got 5 bits' share: ~10 kbit/s whatever the picture.
        codec.framerate = Fraction(FRAME_RATE, 1)
        codec.bit_rate = self.bitrate
        kbps = self.bitrate // 1000
        codec.options = {
            "preset": "veryfast",
            "tune": "zerolatency",
            "profile": "baseline",
            # keyframes only where the source has one or a point asks (forced, IDR); SPS/PPS on each
            "x264-params": f"keyint=infinite:scenecut=0:bframes=0:repeat-headers=1:forced-idr=1:"
                           f"vbv-maxrate={kbps}:vbv-bufsize={kbps // 4}:threads=1",  # small keyframes: weak links
        }
        return codec

    def _run(self) -> None:
        inbox, stop = self._inbox, self._stop
        loop = self._loop
        assert loop is not None
        packer = H264Encoder()  # aiortc's RTP packetizer (FU-A, STAP-A) for encoded packets
        encoder = self._encoder()
        decoder: av.VideoCodecContext | None = None
        assembler: FrameAssembler | None = None
        current: SourceStream | None = None
        need_key = True
        sized = False
        pts = 0
        timestamps: dict[int, int] = {}  # encoder pts -> the source frame's RTP timestamp
        while not stop.is_set():
            try:
                source, seq, ts, marker, payload = inbox.popleft()
            except IndexError:
                time.sleep(IDLE_WAIT)
                continue
            if source is not current:  # the program's picture changed publisher: a new decoder
                current, assembler, need_key = source, FrameAssembler(True), True
                decoder = av.CodecContext.create("h264", "r")
                decoder.thread_type = "SLICE"  # no frame-threading delay
                sized = False  # its size is known from its first decoded picture
                self.passthrough = False
            assert assembler is not None and decoder is not None
            for frame_ts, data in assembler.push(seq, ts, marker, payload):
                if data is None:
                    need_key = True
                    continue
                key = h264.inspect(data).is_idr
                if need_key and not key:
                    continue
                need_key = False
                if self.passthrough:
                    self.frames_in += 1
                    self._forward(packer, current, frame_ts, data, key)
                    continue
                try:
                    pictures = decoder.decode(av.Packet(data))
                except av.error.FFmpegError:
                    need_key = True
                    continue
                for picture in pictures:
                    self.frames_in += 1
                    if not sized:
                        sized = True
                        self.passthrough = picture.width <= self.width and picture.height <= self.height
                        if self.passthrough:
                            log.info("low rendition: the %dx%d program is forwarded as is", picture.width, picture.height)
                            self._forward(packer, current, frame_ts, data, key)
                            break
                    scaled = picture.reformat(self.width, self.height, "yuv420p")
                    force = key or self._keyframe.is_set()
                    self._keyframe.clear()
                    scaled.pict_type = PictureType.I if force else PictureType.NONE
                    scaled.pts, scaled.time_base = pts, encoder.time_base
                    timestamps[pts] = frame_ts
                    pts += 3000
                    for packet in encoder.encode(scaled):
                        payloads, _ = packer.pack(packet)
                        self.bytes_out += packet.size
                        out_ts = timestamps.pop(packet.pts, frame_ts)
                        self.frames_out += 1
                        loop.call_soon_threadsafe(self._emit, current, out_ts, payloads, packet.is_keyframe)
                    if len(timestamps) > 64:  # never: zero latency gives a packet per frame
                        timestamps.clear()
            self.cpu_seconds = time.thread_time()

    def _forward(self, packer: H264Encoder, source: SourceStream, ts: int, data: bytes, key: bool) -> None:
        """A frame of a small program as is: repacketized under the low track's own numbering."""
        packet = av.Packet(data)
        packet.pts, packet.time_base = 0, Fraction(1, 90000)
        payloads, _ = packer.pack(packet)
        self.bytes_out += len(data)
        self.frames_out += 1
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._emit, source, ts, payloads, key)
