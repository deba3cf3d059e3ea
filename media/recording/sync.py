"""A/V alignment of one publisher session from its RTCP sender reports.

aiortc hands the recorder frames whose timestamps start at 0 per track (its ``TimestampMapper``
subtracts each track's first RTP timestamp). A sender report maps a track's RTP clock to the
sender's wall clock, and both tracks share that wall clock, so the wall-clock instant of each
track's "0" gives the offset between the two. This reads aiortc internals (the producer's receivers
and the name-mangled mapper); call it on the event loop, where they are updated.
"""

from __future__ import annotations

from typing import Any


def _signed32(value: int) -> int:
    return ((value + (1 << 31)) % (1 << 32)) - (1 << 31)


def _zero_wallclock(producer: Any, kind: str) -> float | None:
    source = producer.sources.get(kind)
    receiver = getattr(producer, "_receivers", {}).get(kind)
    if source is None or receiver is None or source.sr_ntp is None:
        return None
    mapper = getattr(receiver, "_RTCRtpReceiver__timestamp_mapper", None)
    origin = getattr(mapper, "_origin", None)
    if origin is None:
        return None
    return source.sr_ntp + _signed32((origin % (1 << 32)) - source.sr_rtp) / source.clock_rate


def audio_offset(producer: Any) -> float | None:
    """Seconds from video ts 0 to audio ts 0 on the sender's clock; ``None`` until both are known.

    A session with a single kind has nothing to align: 0.
    """
    if not ("audio" in producer.sources and "video" in producer.sources):
        return 0.0
    audio = _zero_wallclock(producer, "audio")
    video = _zero_wallclock(producer, "video")
    if audio is None or video is None:
        return None
    return audio - video
