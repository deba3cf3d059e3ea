"""The webhook sender's queue and outcomes (server.domain.webhooks_sender): a receiver failing for
long shows as retries and failures here before anyone reads the delivery log."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


class WebhookCollector(Collector):
    def __init__(self, sender: Any) -> None:
        self.sender = sender  # WebhookSender

    def collect(self) -> Iterator[Any]:
        stats = self.sender.stats()
        yield GaugeMetricFamily("diemcau_webhook_queue", "Webhook events waiting to be logged and sent",
                                value=stats["queued"])
        yield GaugeMetricFamily("diemcau_webhook_deliveries_in_flight",
                                "Webhook deliveries being sent or waiting for their next attempt",
                                value=stats["in_flight"])
        yield CounterMetricFamily("diemcau_webhook_events_dropped", "Webhook events dropped: the queue was full",
                                  value=stats.get("dropped", 0))
        attempts = CounterMetricFamily("diemcau_webhook_attempts", "Webhook POSTs by outcome (delivered: 2xx; "
                                       "retried: failed, tried again later; failed: given up)", labels=["outcome"])
        for outcome in ("delivered", "retried", "failed"):
            attempts.add_metric([outcome], stats.get(outcome, 0))
        yield attempts
