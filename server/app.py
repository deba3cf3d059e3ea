"""Application factory: the routes, the middleware, and the one lifespan that starts and stops every service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from media.engine import EngineConfig, MediaEngine
from media.runtime import gc_pauses
from media.sharding.pool import WorkerPool
from server import log_redaction
from server.api import (
    attendance,
    conferences,
    essays,
    events,
    floor,
    materials,
    members,
    metrics,
    moderation,
    points,
    proposals,
    quality,
    questions,
    recordings,
    reports,
    schedule,
    supervision,
    webhooks,
    whep,
    whip,
)
from server.db.engine import make_engine, make_sessionmaker
from server.db.migrate import upgrade
from server.domain import ice_servers
from server.domain.attendance_log import AttendanceLog, node_name
from server.domain.conferences import ended_conference_closer
from server.domain.floor import FloorService
from server.domain.floor_chapters import FloorChapters
from server.domain.quality import QualityService
from server.domain.questions import SubmitRate
from server.domain.recordings import RecordingService
from server.domain.replay_meter import ReplayMeter
from server.domain.signed_links import LinkHolders
from server.domain.supervision_snapshots import SnapshotRetention
from server.domain.token_watch import TokenWatch
from server.domain.webhooks import WebhookEvents
from server.domain.webhooks_sender import WebhookSender
from server.events.bus import EventBus, LocalBus
from server.events.media_events import publish_media_events
from server.events.recording_events import publish_recording_events
from server.limits.database_busy import answer_database_busy
from server.limits.body_size import BodyLimit
from server.limits.websocket_guard import WebSocketLimits
from server.limits.whep_places import WhepPlaces
from server.metrics.scrape import Metrics
from server.metrics.webhook_collector import WebhookCollector
from server.services import Services
from server.settings import Settings, get_settings

# The pages: inside an installed wheel at server/web_client (setup.py copies them there), in a
# checkout (and an editable install) at the top-level web_client/.
_PACKAGED_WEB_CLIENT = Path(__file__).resolve().parent / "web_client"
WEB_CLIENT = (_PACKAGED_WEB_CLIENT if _PACKAGED_WEB_CLIENT.is_dir()
              else Path(__file__).resolve().parent.parent / "web_client")


def media_engine(settings: Settings) -> MediaEngine:
    """This process's media engine, configured from the settings (started by the lifespan)."""
    return MediaEngine(
        EngineConfig(
            ice_servers=ice_servers.for_engine(settings),
            ice_host_addresses=settings.ice_host_addresses,
            ice_udp_port=settings.ice_udp_port,
            ice_port_range=settings.ice_port_range,
            ice_public_addresses=settings.ice_public_addresses,
            keyframe_interval=settings.keyframe_request_interval,
            consumer_timeout=settings.consumer_timeout,
            ingest_share=settings.ingest_share,
            fast_start=settings.fast_start_seconds,
            send_batches=settings.send_batches,
            rtp_pad_max=settings.rtp_pad_max,
            max_handshakes=settings.max_handshakes,
            adapt=settings.rendition_adaptation,
        )
    )


async def open_bus(settings: Settings, stack: AsyncExitStack) -> EventBus:
    """Redis when configured (several nodes share events), else the in-process bus."""
    if not settings.redis_url:
        return LocalBus()
    from server.events.redis_bus import RedisBus  # the redis client is imported only when used

    bus = RedisBus(settings.redis_url)
    await bus.start()
    stack.push_async_callback(bus.close)
    return bus


def lifespan_of(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[dict[str, Services]]]:
    """All start-up and shut-down wiring, in order: each service is started here and its stop is
    pushed on the stack, so shutdown (or a failed start) stops what was started, in reverse order."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Services]]:
        async with AsyncExitStack() as stack:
            await upgrade(settings.effective_database_url)
            db_engine = make_engine(settings.effective_database_url)
            stack.push_async_callback(db_engine.dispose)
            sessionmaker = make_sessionmaker(db_engine)
            bus = await open_bus(settings, stack)
            # Started before the services that publish, so it stops after them with their last events logged.
            webhook_sender = WebhookSender.from_settings(settings, sessionmaker)
            await webhook_sender.start()
            stack.push_async_callback(webhook_sender.stop)
            bus.subscribe("*", WebhookEvents(webhook_sender.submit, bus.is_local).on_bus_event)  # type: ignore[attr-defined]

            media = media_engine(settings)
            media.start()
            stack.push_async_callback(media.shutdown)  # closes its sessions and its worker pool
            publish_media_events(media, bus)
            if settings.worker_count > 1:
                pool = WorkerPool(settings.worker_count - 1, media.config)
                await pool.start()
                media.attach_pool(pool)

            attendance_log = AttendanceLog(sessionmaker, bus, node_name(settings.port))
            await attendance_log.start()
            stack.push_async_callback(attendance_log.stop)

            recording_service = RecordingService.from_settings(settings, sessionmaker)
            await recording_service.start()
            stack.push_async_callback(recording_service.shutdown)
            media.on_producer.append(recording_service.manager.on_producer)
            publish_recording_events(recording_service.manager, bus)
            bus.subscribe("*", recording_service.on_bus_event)

            token_watch = TokenWatch(
                sessionmaker, media, settings.token_lifetime_days, settings.token_check_seconds
            )
            token_watch.start()
            stack.push_async_callback(token_watch.stop)
            bus.subscribe("*", ended_conference_closer(media))

            floor_service = FloorService(
                sessionmaker, bus, media, settings.floor_warning_seconds, settings.floor_link_grace_seconds
            )
            await floor_service.start()  # the floors held before a restart get their time limits back
            stack.push_async_callback(floor_service.stop)
            floor_chapters = FloorChapters(floor_service, recording_service, sessionmaker, bus.node_id)
            bus.subscribe("*", floor_chapters.on_bus_event)
            stack.push_async_callback(floor_chapters.stop)
            # Link quality per point: shares the floor's worker stats refresh (one round trip for both).
            quality_service = QualityService(
                sessionmaker, bus, media, floor_service.quality, recording_service,
                settings.quality_sample_seconds, settings.quality_poor_alert_seconds,
            )
            await quality_service.start()
            stack.push_async_callback(quality_service.stop)

            snapshot_retention = SnapshotRetention(sessionmaker, settings.data_dir, settings.snapshot_retention_seconds)
            snapshot_retention.start()
            stack.push_async_callback(snapshot_retention.stop)

            metrics_registry = Metrics(media, recording_service)
            metrics_registry.register(WebhookCollector(webhook_sender))

            log_redaction.install()  # uvicorn has configured its loggers by now
            gc_pauses.freeze_startup()
            yield {
                "services": Services(
                    settings=settings,
                    sessionmaker=sessionmaker,
                    bus=bus,
                    media=media,
                    whep_places=WhepPlaces(settings.max_whep_per_token, settings.max_whep_per_conference),
                    attendance_log=attendance_log,
                    recordings=recording_service,
                    link_holders=LinkHolders(settings.token_lifetime_days, settings.token_check_seconds),
                    replay_meter=ReplayMeter(recording_service.root, recording_service.live_recorder),
                    token_watch=token_watch,
                    floor=floor_service,
                    question_rate=SubmitRate(),
                    quality=quality_service,
                    metrics=metrics_registry,
                    webhooks=webhook_sender,
                )
            }

    return lifespan


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.ensure_admin_token()

    app = FastAPI(
        title="Điểm Cầu",
        version="0.1.0",
        description="Live conference relay: WHIP ingest, WHEP playback, HLS, attendance.",
        lifespan=lifespan_of(settings),
    )
    answer_database_busy(app)  # 503 with Retry-After when the connection pool stays empty
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

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict:
        return {"ok": True}

    # Routes are matched in order, one included router at a time: the ones a join storm hits (WHEP,
    # WHIP) come first, so hundreds of simultaneous joins do not pay for matching the rest; then HLS
    # (in recordings), which every home viewer polls every second or two.
    for module in (
        whep, whip, recordings, events, conferences, schedule, points, members, materials, attendance, reports,
        metrics, questions, floor, moderation, webhooks, quality, essays, proposals, supervision,
    ):
        app.include_router(module.router)

    @app.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        return RedirectResponse("/index.html")

    app.mount("/", StaticFiles(directory=WEB_CLIENT, html=True), name="web_client")
    return app
