"""Disk space under the recordings, as the recording service guards it (``RecordingService.disk_status``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class DiskCollector(Collector):
    def __init__(self, recordings: Any) -> None:
        self.recordings = recordings  # RecordingService

    def collect(self) -> Iterator[GaugeMetricFamily]:
        disk = self.recordings.disk_status()
        yield GaugeMetricFamily("diemcau_disk_free_bytes", "Free space under the recordings", value=disk["free_bytes"])
        yield GaugeMetricFamily("diemcau_disk_min_free_bytes", "Free space below which nothing is recorded",
                                value=disk["min_free_bytes"])
        yield GaugeMetricFamily("diemcau_disk_low",
                                "1 while free space is below the floor: no recording starts, running ones pause",
                                value=int(disk["low"]))
        yield GaugeMetricFamily("diemcau_recordings_refused",
                                "Publishes not recorded for want of disk space since start",
                                value=disk["refused_recordings"])
