"""AudioMix: the one audio mix of a dialogue, made once per conference, never per subscriber.

While a point holds the floor, the hall's microphone stays live, so every subscriber, live HLS and
the recording must hear both. Forwarding two audio streams would need a second audio m-line in every
WHEP session; instead the hall's and the point's Opus are decoded here, summed and encoded once, and
the result is an ordinary source of the router (mirrored to the media workers like any other).

Timing: a 20 ms tick takes one frame from each input's buffer (an input waits until it holds
``PREBUFFER`` frames, so network jitter does not make it stutter, and keeps at most ``MAX_BUFFER``,
so it cannot fall behind). The output's RTP clock is tied to this machine's wall clock from the
first tick (a late tick skips the timestamps it missed), so one sender report, made before the first
packet, maps it for the subscribers' lip sync and the recorder alike.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from fractions import Fraction

import av
import numpy as np

from media.core.router import Router
from media.core.source import NTP_EPOCH_OFFSET, SourceStream

log = logging.getLogger(__name__)

RATE = 48000
FRAME = 960  # samples per channel per 20 ms tick
CHANNELS = 2
FRAME_BYTES = FRAME * CHANNELS * 2  # s16 interleaved
TICK = FRAME / RATE
PREBUFFER = 2  # frames an input gathers before it is mixed (again after running dry)
MAX_BUFFER = 6  # frames an input may hold; older ones are dropped (bounded delay)
CODEC = "audio/opus"  # the router's codec key of Opus (media.core.codecs.codec_key)


class _Input:
    """One publisher's Opus decoded into a PCM buffer the ticks drain."""

    def __init__(self, source: SourceStream) -> None:
        self.source = source
        self.decoder = av.CodecContext.create("libopus", "r")
        self.decoder.format = "s16"
        self.decoder.layout = "stereo"
        self.decoder.sample_rate = RATE
        self.pcm = bytearray()
        self.primed = False
        self.last_seq: int | None = None
        self.frames_in = 0
        self.dropped = 0

    def push(self, seq: int, payload: bytes) -> None:
        if self.last_seq is not None and ((seq - self.last_seq) & 0xFFFF) >= 0x8000:
            return  # a duplicate or a late one: its time has passed
        self.last_seq = seq
        try:
            frames = self.decoder.decode(av.Packet(payload))
        except av.error.FFmpegError:
            return  # a corrupt packet: the next one decodes on its own
        for frame in frames:
            self.pcm += bytes(frame.planes[0])[: frame.samples * CHANNELS * 2]
            self.frames_in += 1
        excess = len(self.pcm) - MAX_BUFFER * FRAME_BYTES
        if excess > 0:
            del self.pcm[:excess]
            self.dropped += excess // FRAME_BYTES

    def take(self) -> np.ndarray | None:
        """The next 20 ms, or None while buffering."""
        if not self.primed:
            if len(self.pcm) < PREBUFFER * FRAME_BYTES:
                return None
            self.primed = True
        if len(self.pcm) < FRAME_BYTES:
            self.primed = False
            return None
        chunk = np.frombuffer(bytes(self.pcm[:FRAME_BYTES]), dtype=np.int16)
        del self.pcm[:FRAME_BYTES]
        return chunk


class AudioMix:
    def __init__(self, router: Router, producer_id: str) -> None:
        """``producer_id``: whose media the mix accompanies (the recorder files it under that
        publisher, whose picture the program shows)."""
        self.router = router
        self.source = SourceStream("audio", CODEC, RATE, producer_id)
        self.source.local_clock = True
        self.inputs: dict[str, _Input] = {}  # role ("hall", "point") -> input
        self.encoder = av.CodecContext.create("libopus", "w")
        self.encoder.bit_rate = 64000
        self.encoder.format = "s16"
        self.encoder.layout = "stereo"
        self.encoder.sample_rate = RATE
        self.encoder.time_base = Fraction(1, RATE)
        self.encoder.options = {"application": "voip"}
        self._seq = random.randint(0, 0xFFFF)
        self._ts0 = random.randint(0, 0xFFFFFFFF)
        self._ticks = 0
        self._t0 = 0.0  # loop time of tick 0
        self._timer: asyncio.TimerHandle | None = None
        self.packets_out = 0
        self.late_ticks = 0

    def set_input(self, role: str, source: SourceStream | None) -> None:
        """Mix ``source`` as ``role`` (None: leave that role out, e.g. the point muted)."""
        current = self.inputs.get(role)
        if current is not None and current.source is source:
            return
        if source is None or source.codec != CODEC:
            self.inputs.pop(role, None)
        else:
            self.inputs[role] = _Input(source)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        now = time.time()
        # The one sender report: timestamp ts0 is now, and the ticks keep it so.
        self.source.on_sender_report(int((now + NTP_EPOCH_OFFSET) * (1 << 32)), self._ts0)
        self.router.packet_taps.append(self._tap)
        self.router.add_source(self.source, select=False)
        self._timer = loop.call_at(self._t0 + TICK, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._tap in self.router.packet_taps:
            self.router.packet_taps.remove(self._tap)
            self.router.remove_source(self.source)
        self.inputs.clear()

    def _tap(self, source: SourceStream, seq: int, ts: int, marker: int, payload: bytes, key: bool) -> None:
        for mixed in self.inputs.values():
            if mixed.source is source:
                mixed.push(seq, payload)
                return

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        self._ticks += 1
        behind = int((loop.time() - self._t0) / TICK) - self._ticks
        if behind > MAX_BUFFER:  # the loop stalled: skip the ticks it missed, keep the clock
            self._ticks += behind
            self.late_ticks += behind
        try:
            self._emit()
        except Exception:
            log.exception("audio mix failed")
        self._timer = loop.call_at(self._t0 + (self._ticks + 1) * TICK, self._tick)

    def _emit(self) -> None:
        total: np.ndarray | None = None
        for mixed in self.inputs.values():
            chunk = mixed.take()
            if chunk is not None:
                total = chunk.astype(np.int32) if total is None else total + chunk
        if total is None:
            pcm = np.zeros(FRAME * CHANNELS, dtype=np.int16)
        else:
            pcm = np.clip(total, -32768, 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = RATE
        frame.pts = self._ticks * FRAME
        frame.time_base = Fraction(1, RATE)
        ts = (self._ts0 + self._ticks * FRAME) & 0xFFFFFFFF
        for packet in self.encoder.encode(frame):
            self.router.on_rtp(self.source, self._seq, ts, 0, bytes(packet), False)
            self._seq = (self._seq + 1) & 0xFFFF
            self.packets_out += 1
        self.router.flush()

    def stats(self) -> dict:
        return {
            "packets": self.packets_out,
            "late_ticks": self.late_ticks,
            "inputs": {role: {"frames": i.frames_in, "dropped": i.dropped} for role, i in self.inputs.items()},
        }
