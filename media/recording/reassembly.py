"""Frames from one source's RTP packets, on the recorder's writer thread.

The Router hands the recorder packets in arrival order: reordered, sometimes lost, sometimes repaired
late by a retransmission. :class:`FrameAssembler` puts them back in sequence order (starting from the
earliest of its first ``START_PACKETS``) and waits for a missing packet until ``depth`` later ones are held (aiortc's jitter buffers wait as long: 128 packets
of video, 16 of audio), then gives it up. A video frame is the packets of one RTP timestamp up to
the marker bit, depayloaded to an Annex-B access unit; a frame that a lost packet may have belonged
to (the one being assembled, or the next one when the gap fell between frames) is handed on as
``None``, so the recorder knows the decoder chain is broken until the next keyframe. An audio frame
is one Opus packet; a lost one is simply missing (the audio clock fills the gap with silence).
"""

from __future__ import annotations

from aiortc.codecs.h264 import h264_depayload

SEQ_MASK = 0xFFFF
BEHIND = 0x8000  # a sequence number this far ahead modulo 2**16 is behind
MAX_MISORDER = 100  # further behind than this: the sender restarted its numbering (as aiortc's)
VIDEO_DEPTH = 128
AUDIO_DEPTH = 16
START_PACKETS = 16  # held before the first is chosen, so the first ones may arrive reordered too

# (RTP timestamp, payload or access unit; None for a video frame a lost packet broke)
Frame = tuple[int, bytes | None]


class FrameAssembler:
    """One source's packets in, its frames out in sequence order (``push`` returns those completed)."""

    __slots__ = ("video", "depth", "expected", "held", "parts", "parts_ts", "damaged", "gap", "lost", "_out")

    def __init__(self, video: bool) -> None:
        self.video = video
        self.depth = VIDEO_DEPTH if video else AUDIO_DEPTH
        self.expected: int | None = None  # the next sequence number in order
        self.held: dict[int, tuple[int, int, bytes]] = {}  # seq -> (ts, marker, payload), ahead of a gap
        self.parts: list[bytes] = []  # payloads of the video frame being assembled
        self.parts_ts = 0
        self.damaged = False  # the frame being assembled lost a packet
        self.gap = False  # packets were given up just before the next one in order
        self.lost = 0  # packets given up on
        self._out: list[Frame] = []

    def push(self, seq: int, ts: int, marker: int, payload: bytes) -> list[Frame]:
        out = self._out = []
        expected = self.expected
        if seq == expected:
            self._take(seq, ts, marker, payload)
            if self.held:
                self._drain()
            return out
        if expected is None:
            held = self.held
            held[seq] = (ts, marker, payload)
            if len(held) >= START_PACKETS:
                some = seq
                self.expected = min(held, key=lambda s: (s - some + BEHIND) & SEQ_MASK)
                self._drain()
            return out
        ahead = (seq - expected) & SEQ_MASK
        if ahead >= BEHIND:
            if SEQ_MASK + 1 - ahead <= MAX_MISORDER:
                return out  # late: a duplicate, or a retransmission of a packet already given up
            self._give_up(len(self.held))  # the numbering restarted: what is held is never completed
            self.held.clear()
            self._take(seq, ts, marker, payload)
            return out
        self.held[seq] = (ts, marker, payload)
        if len(self.held) > self.depth:
            nearest = min(self.held, key=lambda s: (s - expected) & SEQ_MASK)
            self._give_up((nearest - expected) & SEQ_MASK)
            self.expected = nearest
            self._drain()
        return out

    def _give_up(self, packets: int) -> None:
        self.lost += packets
        self.gap = True
        if self.parts:
            self.damaged = True

    def _drain(self) -> None:
        held = self.held
        while self.expected in held:
            ts, marker, payload = held.pop(self.expected)  # type: ignore[arg-type]
            self._take(self.expected, ts, marker, payload)  # type: ignore[arg-type]

    def _take(self, seq: int, ts: int, marker: int, payload: bytes) -> None:
        self.expected = (seq + 1) & SEQ_MASK
        if not self.video:
            self._out.append((ts, payload))
            return
        gap, self.gap = self.gap, False
        if self.parts and ts != self.parts_ts:
            self._emit()  # the previous frame ended without its marker
        if not self.parts:
            self.parts_ts = ts
            self.damaged = gap  # the lost packets may have been this frame's first ones
        elif gap:
            self.damaged = True
        self.parts.append(payload)
        if marker:
            self._emit()

    def _emit(self) -> None:
        parts, self.parts = self.parts, []
        data: bytes | None = None
        if not self.damaged:
            try:
                data = b"".join([h264_depayload(p) for p in parts])
            except ValueError:  # a payload aiortc cannot depayload: as good as lost
                pass
        self._out.append((self.parts_ts, data))
