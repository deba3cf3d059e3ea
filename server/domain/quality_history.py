"""A point's recent quality samples: the last ten minutes, one per sample interval, in memory.

Enough for the dashboard's chart of loss and bitrate and for a look back at what happened just
now; what lasts (minutes per rendition, minutes poor, freezes) is stored by ``quality_store``.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

HISTORY_SECONDS = 600.0
# What one sample keeps (the chart's series and what explains the level).
SAMPLE_FIELDS = ("score", "score_value", "rendition", "loss_percent", "rtt_ms", "jitter_ms", "retransmit_percent",
                 "bitrate_kbps", "fps", "freeze_seconds")


class History:
    def __init__(self, interval_seconds: float) -> None:
        self.samples: deque[dict[str, Any]] = deque(maxlen=math.ceil(HISTORY_SECONDS / interval_seconds))

    def add(self, at: str, values: dict[str, Any]) -> None:
        self.samples.append({"at": at, **{name: values.get(name) for name in SAMPLE_FIELDS}})

    def list(self) -> list[dict[str, Any]]:
        """Oldest first."""
        return list(self.samples)
