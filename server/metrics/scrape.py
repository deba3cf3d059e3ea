"""This process's Prometheus registry: the collectors, and the worker refresh a scrape waits for."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

from server.metrics.disk_collector import DiskCollector
from server.metrics.media_collector import MediaCollector
from server.metrics.session_totals import SessionTotals
from server.metrics.worker_stats import WorkerStatsCache


class Metrics:
    """Built once by the lifespan; ``totals`` must hear every consumer close (``media.on_consumer``)."""

    def __init__(self, media: Any, recordings: Any, max_age: float = 2.0) -> None:
        self.totals = SessionTotals()
        self.workers = WorkerStatsCache(media, max_age)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(MediaCollector(media, self.totals, self.workers))
        self.registry.register(DiskCollector(recordings))
        media.on_consumer.append(self.totals.on_consumer)

    def register(self, collector: Collector) -> None:
        """Another service's collector (the webhook sender's queue)."""
        self.registry.register(collector)

    async def exposition(self) -> bytes:
        """The text format, the workers' figures at most ``max_age`` s old."""
        await self.workers.fresh()
        return generate_latest(self.registry)
