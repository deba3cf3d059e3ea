"""Prometheus metrics (text exposition) and a JSON view of the media engine for operators and tests."""

from __future__ import annotations

import os

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from media.runtime import codec_audit
from media.egress import fanout
from media.engine import MediaEngine
from server.deps import AdminDep, MediaDep, RecordingsDep
from server.domain.recordings import RecordingService

router = APIRouter(tags=["operations"])


def _collect(media: MediaEngine, recordings: RecordingService) -> CollectorRegistry:
    registry = CollectorRegistry()
    Gauge("diemcau_producers", "Active publisher sessions", registry=registry).set(len(media.producers))
    Gauge("diemcau_consumers", "Active subscriber sessions", registry=registry).set(len(media.consumers))
    codecs = Gauge(
        "diemcau_codec_instances_created",
        "Decoders/encoders aiortc created in this process (the relay should create none)",
        ["codec"],
        registry=registry,
    )
    for name, count in codec_audit.snapshot().items():
        codecs.labels(name).set(count)
    disk = recordings.disk_status()
    Gauge("diemcau_disk_free_bytes", "Free space under the recordings", registry=registry).set(disk["free_bytes"])
    Gauge(
        "diemcau_disk_min_free_bytes", "Free space below which nothing is recorded", registry=registry
    ).set(disk["min_free_bytes"])
    Gauge(
        "diemcau_disk_low", "1 while free space is below the floor: no recording starts, running ones pause",
        registry=registry,
    ).set(int(disk["low"]))
    Gauge(
        "diemcau_recordings_refused", "Publishes not recorded for want of disk space since start",
        registry=registry,
    ).set(disk["refused_recordings"])
    return registry


@router.get("/metrics", include_in_schema=False)
async def metrics(media: MediaDep, recordings: RecordingsDep, _: AdminDep) -> Response:
    """Prometheus scrape with the admin token (``authorization: {credentials_file: ...}`` in the scrape
    config): how many publish and watch, and when, is not for anyone on the internet to read."""
    return Response(generate_latest(_collect(media, recordings)), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/media/stats")
async def media_stats(media: MediaDep, _: AdminDep) -> dict:
    codecs = codec_audit.snapshot()
    if media.pool is not None:
        for name, n in (await media.pool.refresh_stats()).items():
            codecs[name] = codecs.get(name, 0) + n
    return {
        "codec_instances": codecs,
        "forwarding": "c" if fanout.enabled() else "python",
        "workers": [{"index": 0, "pid": os.getpid(), **media.process_stats()}]
        + ([{"index": w.index, "pid": w.pid, "consumers": len(w.consumers), **w.stats} for w in media.pool.workers]
           if media.pool is not None else []),
        "routers": {
            cid: {
                "consumers": media.consumer_count(cid),
                "keyframe_requests_sent": r.keyframe_requests_sent,
                "sources": {
                    k: (
                        {"codec": s.codec, "packets": s.packets, "keyframes": s.keyframes}
                        if s is not None
                        else None
                    )
                    for k, s in r.active.items()
                },
                "stage": media.stages[cid].stats() if cid in media.stages else None,
            }
            for cid, r in media.routers.items()
        },
        "consumers": {
            c.id: {"conference": c.conference_id, "role": c.role, "name": c.name, **c.stats()}
            for c in media.consumers.values()
        },
        "producers": {
            p.id: {"conference": p.conference_id, "role": p.role, "subject_id": p.subject_id, **p.stats()}
            for p in media.producers.values()
        },
    }
