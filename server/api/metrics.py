"""Prometheus metrics (text exposition) and a JSON view of the media engine for operators and tests."""

from __future__ import annotations

import os

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from media.runtime import codec_audit
from media.egress import fanout
from server.deps import AdminDep, MediaDep, MetricsDep

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
async def metrics(metrics: MetricsDep, _: AdminDep) -> Response:
    """Prometheus scrape with the admin token (``authorization: {credentials_file: ...}`` in the scrape
    config): how many publish and watch, and when, is not for anyone on the internet to read. Covers
    the ingest and every media worker (server.metrics)."""
    return Response(await metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/media/stats")
async def media_stats(media: MediaDep, _: AdminDep) -> dict:
    codecs = codec_audit.snapshot()
    if media.pool is not None:
        for name, n in (await media.pool.refresh_stats()).items():
            codecs[name] = codecs.get(name, 0) + n
    return {
        "codec_instances": codecs,
        "forwarding": "c" if fanout.enabled() else "python",
        "renditions": media.renditions.stats() if media.renditions is not None else {},  # the transcoders
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
