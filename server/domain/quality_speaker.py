"""The speaker's stream as the relay receives it: picture size, frame rate, bitrate, keyframe
interval and its link's loss, for the top of the organisers' quality view.

Nothing is decoded: a packet tap on the conference's router (``Router.packet_taps``, called once
per packet the speaker sends, not per point) counts bytes, frames (marker bits), keyframes
(distinct timestamps of keyframe packets) and sequence numbers (expected against received is the
loss, as a receiver report counts it), and reads the picture size from the H.264 SPS or the VP8
key frame header when a keyframe passes. ``sample`` turns the counters into rates once per
sample interval. Each of the speaker's video tracks is measured: with a second, low rendition
published by the speaker page both show, the larger first (the server's own transcode is not the
speaker's).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from media.recording.h264 import parse_sps

log = logging.getLogger(__name__)

STALE_SECONDS = 3.0  # a track with no packet for this long is not counted as sending


def _h264_size(payload: bytes) -> tuple[int, int] | None:
    """The picture size from an SPS in a single-NAL or STAP-A packet (RFC 6184)."""
    nals: list[bytes] = []
    kind = payload[0] & 0x1F
    if kind == 7:
        nals.append(payload)
    elif kind == 24:
        pos = 1
        while pos + 2 < len(payload):
            size = (payload[pos] << 8) | payload[pos + 1]
            nals.append(payload[pos + 2:pos + 2 + size])
            pos += 2 + size
    for nal in nals:
        if nal and nal[0] & 0x1F == 7:
            sps = parse_sps(nal)
            return sps.width, sps.height
    return None


def _vp8_size(payload: bytes) -> tuple[int, int] | None:
    """The picture size from a VP8 key frame's header (RFC 7741 descriptor, then RFC 6386 9.1)."""
    first = payload[0]
    pos = 1
    if first & 0x80:
        ext = payload[pos]
        pos += 1
        if ext & 0x80:
            pos += 2 if payload[pos] & 0x80 else 1
        if ext & 0x40:
            pos += 1
        if ext & 0x30:
            pos += 1
    header = payload[pos:pos + 10]
    if len(header) < 10 or header[0] & 0x01 or header[3:6] != b"\x9d\x01\x2a":
        return None
    return (header[6] | header[7] << 8) & 0x3FFF, (header[8] | header[9] << 8) & 0x3FFF


def picture_size(codec: str, payload: bytes) -> tuple[int, int] | None:
    try:
        if codec == "video/h264":
            return _h264_size(payload)
        if codec == "video/vp8":
            return _vp8_size(payload)
    except (ValueError, IndexError):
        pass
    return None


class TrackMeter:
    """Counters of one speaker track (a source epoch), updated per packet."""

    __slots__ = ("kind", "codec", "producer_id", "bytes", "packets", "frames", "highest", "received", "key_ts",
                 "key_at", "keyframe_interval", "width", "height", "last_at", "_window")

    def __init__(self, kind: str, codec: str, producer_id: str) -> None:
        self.kind, self.codec, self.producer_id = kind, codec, producer_id
        self.bytes = self.packets = self.frames = self.received = 0
        self.highest: int | None = None  # extended sequence number
        self.key_ts = -1
        self.key_at = 0.0
        self.keyframe_interval: float | None = None
        self.width: int | None = None
        self.height: int | None = None
        self.last_at = 0.0
        self._window: tuple[float, int, int, int, int] | None = None  # (at, bytes, frames, expected, received)

    def packet(self, seq: int, ts: int, marker: int, payload: bytes, key: bool, now: float) -> None:
        self.packets += 1
        self.received += 1
        self.bytes += len(payload) + 12
        self.last_at = now
        if self.highest is None:
            self.highest = seq
        else:
            ahead = (seq - self.highest) & 0xFFFF
            if 0 < ahead < 0x8000:
                self.highest += ahead
        if self.kind != "video":
            return
        if marker:
            self.frames += 1
        if key and ts != self.key_ts:
            if self.key_at:
                self.keyframe_interval = now - self.key_at
            self.key_ts, self.key_at = ts, now
            size = picture_size(self.codec, payload)
            if size is not None:
                self.width, self.height = size

    def sample(self, now: float) -> dict[str, Any]:
        """Rates since the last sample (the first sample starts the window and has none)."""
        expected = 0 if self.highest is None else self.highest
        previous, self._window = self._window, (now, self.bytes, self.frames, expected, self.received)
        figures: dict[str, Any] = {"bitrate_kbps": None, "fps": None, "loss_percent": None}
        if previous is not None and now > previous[0]:
            seconds = now - previous[0]
            figures["bitrate_kbps"] = round((self.bytes - previous[1]) * 8 / seconds / 1000, 1)
            if self.kind == "video":
                figures["fps"] = round((self.frames - previous[2]) / seconds, 1)
            want = expected - previous[3]
            got = self.received - previous[4]
            figures["loss_percent"] = round(max(0.0, (want - got) / want * 100), 1) if want > 0 else 0.0
        if self.kind == "video":
            figures.update(width=self.width, height=self.height,
                           keyframe_interval_seconds=round(self.keyframe_interval, 2) if self.keyframe_interval else None)
        return figures


class SpeakerMeter:
    """Every conference's speaker tracks in this process (the ingest, where publishers are)."""

    def __init__(self, media: Any) -> None:
        self.media = media
        self._speakers: dict[str, set[str]] = {}  # conference -> its speaker producers' ids
        self._tracks: dict[int, TrackMeter | None] = {}  # source id -> meter (None: not the speaker's)
        self._tapped: set[str] = set()
        self.latest: dict[str, dict[str, Any]] = {}  # conference -> the last sample

    def on_producer(self, conference_id: str, producer: Any, opened: bool) -> None:
        """``MediaEngine.on_producer``: a speaker's producer opened or closed."""
        if getattr(producer, "role", None) != "speaker":
            return
        ids = self._speakers.setdefault(conference_id, set())
        if opened:
            ids.add(producer.id)
            if conference_id not in self._tapped:
                self._tapped.add(conference_id)
                self.media.router(conference_id).packet_taps.append(self._tap_for(conference_id))
        else:
            ids.discard(producer.id)
            for source_id in [s for s, m in self._tracks.items() if m is not None and m.producer_id == producer.id]:
                del self._tracks[source_id]

    def _tap_for(self, conference_id: str) -> Any:
        speakers = self._speakers[conference_id]
        tracks = self._tracks

        def tap(source: Any, seq: int, ts: int, marker: int, payload: bytes, key: bool) -> None:
            try:
                meter = tracks.get(source.id, False)
                if meter is False:
                    meter = tracks[source.id] = (
                        TrackMeter(source.kind, source.codec, source.producer_id) if self._sent(source, speakers) else None
                    )
                if meter is not None:
                    meter.packet(seq, ts, marker, payload, key, time.time())
            except Exception:  # a tap's exception would stop the packet's forwarding
                log.exception("speaker meter failed")

        return tap

    def _sent(self, source: Any, speakers: set[str]) -> bool:
        """Whether the speaker sends ``source`` (its picture, sound or own low rendition), not the
        server's transcode of it (filed under the speaker's producer too, media.renditions)."""
        producer = self.media.producers.get(source.producer_id) if source.producer_id in speakers else None
        return producer is not None and (source in producer.sources.values() or source is getattr(producer, "low", None))

    def conferences(self) -> set[str]:
        """The conferences whose speaker publishes here now."""
        return {conference_id for conference_id, ids in self._speakers.items() if ids}

    def sample(self, conference_id: str) -> dict[str, Any]:
        """The speaker's figures now (rates over the time since the last call); also kept in
        ``latest`` for readers between samples."""
        now = time.time()
        ids = self._speakers.get(conference_id, set())
        meters = [m for m in self._tracks.values() if m is not None and m.producer_id in ids]
        videos, audio = [], None
        for meter in meters:
            figures = meter.sample(now)
            if now - meter.last_at > STALE_SECONDS:
                continue
            if meter.kind == "video":
                videos.append(figures)
            else:
                audio = figures
        videos.sort(key=lambda f: ((f.get("height") or 0), f.get("bitrate_kbps") or 0), reverse=True)
        main = videos[0] if videos else {}
        rtt = None
        for producer_id in ids:
            producer = getattr(self.media, "producers", {}).get(producer_id)
            stats = producer.stats() if producer is not None else {}
            if isinstance(stats.get("rtt_ms"), (int, float)):
                rtt = round(float(stats["rtt_ms"]), 1)
        losses = [f["loss_percent"] for f in [*videos, *([audio] if audio else [])] if f.get("loss_percent") is not None]
        state = {
            "width": main.get("width"),
            "height": main.get("height"),
            "fps": main.get("fps"),
            "bitrate_kbps": round(sum(v.get("bitrate_kbps") or 0 for v in videos) + ((audio or {}).get("bitrate_kbps") or 0), 1)
            if videos or audio else None,
            "keyframe_interval_seconds": main.get("keyframe_interval_seconds"),
            "loss_percent": max(losses) if losses else None,
            "rtt_ms": rtt,
            "renditions": [
                {k: v.get(k) for k in ("width", "height", "fps", "bitrate_kbps")} for v in videos
            ],
        }
        self.latest[conference_id] = state
        return state
