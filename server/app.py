"""Application factory: wires settings, database, event bus and media engine into FastAPI."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from media.runtime import gc_pauses
from media.sharding.pool import WorkerPool
from media.engine import EngineConfig, MediaEngine
from server.api import (
    attendance,
    conferences,
    events,
    materials,
    members,
    metrics,
    points,
    recordings,
    reports,
    schedule,
    whep,
    whip,
)
from server.db.engine import make_engine, make_sessionmaker
from server.db.migrate import upgrade
from server import log_redaction
from server.domain import ice_servers
from server.domain.conferences import setup_conference_end
from server.domain.recordings import setup as setup_recordings
from server.domain.token_watch import start_token_watch, stop_token_watch
from server.events.bus import LocalBus, conference_topic
from server.limits.body_size import BodyLimit
from server.limits.websocket_guard import WebSocketLimits
from server.limits.whep_places import WhepPlaces
from server.settings import Settings, get_settings

log = logging.getLogger(__name__)
WEB_CLIENT = Path(__file__).resolve().parent.parent / "web_client"


def _wire_media_events(app: FastAPI) -> None:
    """Turn media session changes into conference events (presence, counts, attendance)."""
    media: MediaEngine = app.state.media
    bus = app.state.bus
    import asyncio

    def on_producer(conference_id: str, producer, opened: bool) -> None:  # type: ignore[no-untyped-def]
        asyncio.ensure_future(
            bus.publish(
                conference_topic(conference_id),
                {"type": "speaker.live" if opened else "speaker.offline", "session_id": producer.id,
                 "consumers": media.consumer_count(conference_id)},
            )
        )

    def on_consumer(conference_id: str, consumer, opened: bool) -> None:  # type: ignore[no-untyped-def]
        asyncio.ensure_future(
            bus.publish(
                conference_topic(conference_id),
                {
                    "type": "consumer.joined" if opened else "consumer.left",
                    "session_id": consumer.id,
                    "role": consumer.role,
                    "name": consumer.name,
                    "token_id": getattr(consumer, "owner", None),
                    "subject_id": getattr(consumer, "subject_id", None),
                    "consumers": media.consumer_count(conference_id),
                },
            )
        )

    media.on_producer.append(on_producer)
    media.on_consumer.append(on_consumer)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.ensure_admin_token()

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        await upgrade(settings.effective_database_url)
        app.state.db_engine = make_engine(settings.effective_database_url)
        app.state.sessionmaker = make_sessionmaker(app.state.db_engine)
        if settings.redis_url:
            from server.events.redis_bus import RedisBus

            app.state.bus = RedisBus(settings.redis_url)
            await app.state.bus.start()
        else:
            app.state.bus = LocalBus()
        app.state.ws_handlers = {}
        app.state.media = MediaEngine(
            EngineConfig(
                ice_servers=ice_servers.for_engine(settings),
                ice_host_addresses=settings.ice_host_addresses,
                keyframe_interval=settings.keyframe_request_interval,
                consumer_timeout=settings.consumer_timeout,
                ingest_share=settings.ingest_share,
                fast_start=settings.fast_start_seconds,
                send_batches=settings.send_batches,
                rtp_pad_max=settings.rtp_pad_max,
                max_handshakes=settings.max_handshakes,
            )
        )
        app.state.media.start()
        _wire_media_events(app)
        if settings.worker_count > 1:
            pool = WorkerPool(settings.worker_count - 1, app.state.media.config)
            await pool.start()
            app.state.media.attach_pool(pool)
        for hook in app.state.startup_hooks:
            await hook(app)
        gc_pauses.freeze_startup()
        try:
            yield
        finally:
            for hook in reversed(app.state.shutdown_hooks):
                await hook(app)
            await app.state.media.shutdown()
            if hasattr(app.state.bus, "close"):
                await app.state.bus.close()
            await app.state.db_engine.dispose()

    app = FastAPI(
        title="Điểm Cầu",
        version="0.1.0",
        description="Live conference relay: WHIP ingest, WHEP playback, HLS, attendance.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.startup_hooks = []
    app.state.shutdown_hooks = []
    app.state.whep_places = WhepPlaces(settings.max_whep_per_token, settings.max_whep_per_conference)
    # Inside CORS (added first), so a browser can read their 413/429 answers.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        WebSocketLimits,
        per_token=settings.max_websockets_per_token,
        max_message_bytes=settings.ws_max_message_bytes,
        rate=settings.ws_messages_per_second,
        burst=settings.ws_message_burst,
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "If-Match"],
        expose_headers=["Location", "Link", "ETag", "Accept-Post", "Accept-Patch", "Retry-After"],
    )
    app.state.startup_hooks.append(attendance.start_attendance)
    app.state.shutdown_hooks.append(attendance.stop_attendance)
    app.state.startup_hooks.append(setup_recordings)
    app.state.startup_hooks.append(start_token_watch)
    app.state.startup_hooks.append(setup_conference_end)
    app.state.shutdown_hooks.append(stop_token_watch)
    app.state.startup_hooks.append(log_redaction.install_hook)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict:
        return {"ok": True}

    # Routes are matched in order, one included router at a time: the ones a join storm hits (WHEP,
    # WHIP) come first, so hundreds of simultaneous joins do not pay for matching the rest.
    for module in (
        whep, whip, events, conferences, schedule, points, members, materials, attendance, reports,
        recordings, metrics,
    ):
        app.include_router(module.router)

    @app.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        return RedirectResponse("/index.html")

    app.mount("/", StaticFiles(directory=WEB_CLIENT, html=True), name="web_client")
    return app
