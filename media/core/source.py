"""SourceStream: one incoming RTP stream (a kind of one producer) as the router sees it.

A new SourceStream is an *epoch*: consumers notice the change of object and rebase their offsets at
the next keyframe, so their outgoing stream stays continuous across reconnects and floor changes.
"""

from __future__ import annotations

import itertools

from media.core.history import RtpHistory

NTP_EPOCH_OFFSET = 2208988800  # seconds between 1900 and 1970
_ids = itertools.count(1)


class SourceStream:
    __slots__ = (
        "kind",
        "codec",
        "clock_rate",
        "history",
        "last_seq",
        "last_ts",
        "last_arrival",
        "sr_ntp",
        "sr_rtp",
        "packets",
        "keyframes",
        "gop_ts",
        "gop_seq",
        "gop_at",
        "producer_id",
        "id",
        "local_clock",
    )

    def __init__(
        self, kind: str, codec: str, clock_rate: int, producer_id: str = "", source_id: int | None = None
    ) -> None:
        self.id = source_id if source_id is not None else next(_ids)
        self.kind = kind
        self.codec = codec
        self.clock_rate = clock_rate
        self.producer_id = producer_id
        self.history = RtpHistory()
        self.last_seq = 0
        self.last_ts = 0
        self.last_arrival = 0.0  # time.time() of the last packet
        self.sr_ntp: float | None = None  # publisher's sender report: wall clock (unix seconds)
        self.sr_rtp = 0  # ... and the RTP timestamp it maps to
        self.packets = 0
        self.keyframes = 0
        self.gop_ts = -1  # the latest keyframe: its RTP timestamp, first flagged packet, arrival
        self.gop_seq = 0
        self.gop_at = 0.0
        # Made here (the dialogue mix, media.floor.mixer), not received: its one sender report is
        # this machine's clock, set before its first packet, so it places its own packets.
        self.local_clock = False

    def on_sender_report(self, ntp_timestamp: int, rtp_timestamp: int) -> None:
        self.sr_ntp = ntp_timestamp / (1 << 32) - NTP_EPOCH_OFFSET
        self.sr_rtp = rtp_timestamp

    def rtp_at(self, wallclock: float) -> int:
        """Source RTP timestamp for a wall-clock instant: from the publisher's SR when it sent one."""
        if self.sr_ntp is not None:
            return (self.sr_rtp + int((wallclock - self.sr_ntp) * self.clock_rate)) & 0xFFFFFFFF
        if self.last_arrival:
            return (self.last_ts + int((wallclock - self.last_arrival) * self.clock_rate)) & 0xFFFFFFFF
        return 0
