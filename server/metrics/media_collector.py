"""The media plane's metrics, read at scrape time from every media process.

Labelled per conference and per media process (``worker``: "0" is the ingest, 1.. the forwarding
workers), never per point: a conference of 500 points is a handful of series, not thousands. The
workers' figures are their last stats reply (``WorkerStatsCache`` refreshes them before a scrape).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from media.runtime import codec_audit
from server.metrics.session_totals import KINDS, SessionTotals, worker_of
from server.metrics.worker_stats import WorkerStatsCache

INGEST = "0"
CONF = ["conference", "worker"]
CONF_KIND = ["conference", "worker", "kind"]

# (stats field, metric name, help) of the per-kind counters summed over a conference's subscribers
FORWARDING = (
    ("packets", "diemcau_forwarded_packets", "RTP packets forwarded to subscribers (first sends, not retransmissions)"),
    ("octets", "diemcau_forwarded_bytes", "RTP payload bytes forwarded to subscribers"),
    ("retransmits", "diemcau_retransmissions", "Packets resent to subscribers in answer to their NACKs"),
    ("nacks_refused", "diemcau_nacks_refused", "NACKed packets not resent (too old, not yet sent, over budget)"),
    ("drops", "diemcau_send_drops", "Packets not sent: socket buffer full, over the MTU, or a send error"),
    ("keyframe_requests", "diemcau_keyframe_requests", "Keyframe requests (PLI/FIR) received from subscribers"),
    ("packets_lost", "diemcau_packets_lost", "Packets subscribers reported lost (receiver reports, cumulative)"),
)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def transcoder_rows(value: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(conference, figures) from ``process_stats()["transcoders"]``: a mapping by conference or a
    list of entries naming their conference."""
    if isinstance(value, Mapping):
        for conference, figures in value.items():
            if isinstance(figures, Mapping):
                yield str(conference), figures
    elif isinstance(value, list):
        for figures in value:
            if isinstance(figures, Mapping):
                conference = figures.get("conference") or figures.get("conference_id")
                if conference:
                    yield str(conference), figures


class MediaCollector(Collector):
    """Sessions by role, forwarded packets and bytes, loss, retransmissions, keyframe requests,
    renditions in use, transcoder CPU and handshake-gate waits, for every media process."""

    def __init__(self, media: Any, totals: SessionTotals, workers: WorkerStatsCache) -> None:
        self.media = media  # MediaEngine
        self.totals = totals
        self.workers = workers

    def collect(self) -> Iterator[Any]:
        media = self.media
        pool = media.pool
        consumers = [(c.conference_id, c.role, c.stats()) for c in list(media.consumers.values())]
        producers = [(p.conference_id, p.role) for p in list(media.producers.values())]
        processes: list[tuple[str, bool, Mapping[str, Any]]] = [(INGEST, True, media.process_stats())]
        if pool is not None:
            processes += [(str(w.index), w.writer is not None, w.stats) for w in pool.workers]

        yield _gauge("diemcau_producers", "Active publisher sessions", value=len(producers))
        yield _gauge("diemcau_consumers", "Active subscriber sessions, every media process", value=len(consumers))
        yield from self._sessions(consumers, producers)
        yield from self._forwarding(consumers)
        yield from self._link_quality(consumers)
        yield from self._renditions(consumers)
        yield from self._routers()
        yield from self._transcoders(processes)
        yield from self._processes(processes)
        if pool is not None:
            yield _counter("diemcau_mirror_drops", "Source packets a worker's mirror socket did not take",
                           value=pool.mirror_drops)
            yield _counter("diemcau_mirror_sends", "Datagrams of source packets mirrored to the workers",
                           value=pool.mirror_sends)
            yield _counter("diemcau_worker_stats_refreshes",
                           "Stats requests to the workers for scrapes (one serves every scrape for a few seconds)",
                           value=self.workers.refreshes)

    # --- per conference ----------------------------------------------------------------------------
    @staticmethod
    def _sessions(consumers: list, producers: list) -> Iterator[Any]:
        family = GaugeMetricFamily(
            "diemcau_sessions", "Open WebRTC sessions by direction (publish: WHIP, watch: WHEP) and token role",
            labels=["conference", "worker", "direction", "role"],
        )
        counts: Counter[tuple[str, str, str, str]] = Counter()
        for conference, role, stats in consumers:
            counts[(conference, worker_of(stats), "watch", role or "")] += 1
        for conference, role in producers:
            counts[(conference, INGEST, "publish", role or "")] += 1
        for labels, n in sorted(counts.items()):
            family.add_metric(list(labels), n)
        yield family

    def _forwarding(self, consumers: list) -> Iterator[Any]:
        totals = self.totals.totals((conference, stats) for conference, _, stats in consumers)
        for field, name, help_text in FORWARDING:
            family = CounterMetricFamily(name, help_text, labels=CONF_KIND)
            for key in sorted(totals):
                family.add_metric(list(key), totals[key].get(field, 0.0))
            yield family

    @staticmethod
    def _link_quality(consumers: list) -> Iterator[Any]:
        """The subscribers' receiver-report figures, averaged (and the worst) per conference."""
        samples: dict[str, dict[tuple[str, str, str], list[float]]] = {
            "fraction_lost": defaultdict(list), "rtt_ms": defaultdict(list), "jitter_ms": defaultdict(list)
        }
        for conference, _, stats in consumers:
            for kind in KINDS:
                figures = stats.get(kind)
                if not isinstance(figures, Mapping):
                    continue
                for field, values in samples.items():
                    value = _number(figures.get(field))
                    if value is not None:
                        values[(conference, worker_of(stats), kind)].append(value)
        loss_mean = GaugeMetricFamily("diemcau_subscriber_loss_ratio_mean",
                                      "Mean fraction lost in the subscribers' last receiver reports", labels=CONF_KIND)
        loss_max = GaugeMetricFamily("diemcau_subscriber_loss_ratio_max",
                                     "Largest fraction lost in the subscribers' last receiver reports", labels=CONF_KIND)
        rtt = GaugeMetricFamily("diemcau_subscriber_rtt_seconds_mean", "Mean round-trip time to the subscribers",
                                labels=CONF_KIND)
        jitter = GaugeMetricFamily("diemcau_subscriber_jitter_seconds_mean",
                                   "Mean interarrival jitter the subscribers report", labels=CONF_KIND)
        for key, values in sorted(samples["fraction_lost"].items()):
            loss_mean.add_metric(list(key), sum(values) / len(values))
            loss_max.add_metric(list(key), max(values))
        for key, values in sorted(samples["rtt_ms"].items()):
            rtt.add_metric(list(key), sum(values) / len(values) / 1000)
        for key, values in sorted(samples["jitter_ms"].items()):
            jitter.add_metric(list(key), sum(values) / len(values) / 1000)
        yield from (loss_mean, loss_max, rtt, jitter)

    @staticmethod
    def _renditions(consumers: list) -> Iterator[Any]:
        """What subscribers receive now (``rendition``) and which are pinned, where the stats say."""
        labels = ["conference", "worker", "rendition"]
        in_use = GaugeMetricFamily("diemcau_renditions_in_use",
                                   "Subscribers receiving each rendition (full, low, audio)", labels=labels)
        pinned = GaugeMetricFamily("diemcau_renditions_pinned",
                                   "Subscribers whose rendition an operator or organiser pinned", labels=labels)
        using: Counter[tuple[str, str, str]] = Counter()
        pins: Counter[tuple[str, str, str]] = Counter()
        for conference, _, stats in consumers:
            if isinstance(stats.get("rendition"), str):
                using[(conference, worker_of(stats), stats["rendition"])] += 1
            if isinstance(stats.get("pinned"), str):
                pins[(conference, worker_of(stats), stats["pinned"])] += 1
        for labels_, n in sorted(using.items()):
            in_use.add_metric(list(labels_), n)
        for labels_, n in sorted(pins.items()):
            pinned.add_metric(list(labels_), n)
        yield from (in_use, pinned)

    def _routers(self) -> Iterator[Any]:
        family = CounterMetricFamily(
            "diemcau_keyframe_requests_sent", "Keyframe requests sent to the conference's publisher (joins merged)",
            labels=CONF,
        )
        for conference, router in sorted(self.media.routers.items()):
            family.add_metric([conference, INGEST], router.keyframe_requests_sent)
        yield family

    @staticmethod
    def _transcoders(processes: list) -> Iterator[Any]:
        """The server's low renditions (``process_stats()["transcoders"]``: by conference, while one runs)."""
        running = GaugeMetricFamily("diemcau_transcoders", "Server transcodes (the low rendition) running",
                                    labels=CONF)
        cpu_seconds = CounterMetricFamily("diemcau_transcoder_cpu_seconds",
                                          "CPU time the conference's transcode used since it started", labels=CONF)
        cpu_share = GaugeMetricFamily("diemcau_transcoder_cpu_ratio",
                                      "Share of one core the conference's transcode used since it started",
                                      labels=CONF)
        frames = CounterMetricFamily("diemcau_transcoder_frames", "Frames the transcode decoded (in) and "
                                     "encoded (out), or dropped when it fell behind", labels=[*CONF, "stage"])
        for worker, _, stats in processes:
            for conference, figures in transcoder_rows(stats.get("transcoders")):
                labels = [conference, worker]
                running.add_metric(labels, 1)
                seconds = _number(figures.get("cpu_seconds"))
                if seconds is not None:
                    cpu_seconds.add_metric(labels, seconds)
                share = _number(figures.get("cpu_share"))
                if share is not None:
                    cpu_share.add_metric(labels, share)
                for field, stage in (("frames_in", "in"), ("frames_out", "out"), ("dropped", "dropped")):
                    value = _number(figures.get(field))
                    if value is not None:
                        frames.add_metric([*labels, stage], value)
        yield from (running, cpu_seconds, cpu_share, frames)

    # --- per media process -------------------------------------------------------------------------
    def _processes(self, processes: list) -> Iterator[Any]:
        up = GaugeMetricFamily("diemcau_worker_up", "1 while the media process answers", labels=["worker"])
        gate = {
            "active": GaugeMetricFamily("diemcau_handshakes_active", "ICE/DTLS handshakes holding a slot",
                                        labels=["worker"]),
            "waiting": GaugeMetricFamily("diemcau_handshakes_waiting", "WHEP requests waiting for a handshake slot",
                                         labels=["worker"]),
            "admitted": CounterMetricFamily("diemcau_handshakes_admitted", "Handshakes admitted by the gate",
                                            labels=["worker"]),
            "waited": CounterMetricFamily("diemcau_handshake_waits", "Handshakes that had to wait for a slot",
                                          labels=["worker"]),
            "overrun": CounterMetricFamily("diemcau_handshake_overruns",
                                           "Handshakes let through after the longest wait without a slot",
                                           labels=["worker"]),
            "longest_wait_s": GaugeMetricFamily("diemcau_handshake_longest_wait_seconds",
                                                "Longest wait for a handshake slot since start", labels=["worker"]),
        }
        codecs = GaugeMetricFamily(
            "diemcau_codec_instances_created",
            "Decoders/encoders aiortc created, every media process together (the relay should create none)",
            labels=["codec"],
        )
        for worker, alive, stats in processes:
            up.add_metric([worker], 1 if alive else 0)
            handshakes = stats.get("handshakes")
            if isinstance(handshakes, Mapping):
                for field, family in gate.items():
                    value = _number(handshakes.get(field))
                    if value is not None:
                        family.add_metric([worker], value)
        merged = Counter(codec_audit.snapshot())
        merged.update(self.workers.codecs)  # the workers', as of their last stats
        for name, n in sorted(merged.items()):
            codecs.add_metric([name], n)
        yield up
        yield from gate.values()
        yield codecs


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


def _counter(name: str, help_text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, help_text, value=value)
