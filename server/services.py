"""The process's long-lived services, built and stopped by the lifespan in ``server.app``.

One typed object instead of attributes set on ``app.state`` from several modules: what a router can
depend on is listed here, and ``server.deps`` hands each part out as an ``Annotated`` dependency.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from media.engine import MediaEngine
from server.domain.attendance_log import AttendanceLog
from server.domain.floor import FloorService
from server.domain.quality import QualityService
from server.domain.questions import SubmitRate
from server.domain.recordings import RecordingService
from server.domain.replay_meter import ReplayMeter
from server.domain.signed_links import LinkHolders
from server.domain.token_watch import TokenWatch
from server.domain.webhooks_sender import WebhookSender
from server.events.bus import EventBus
from server.limits.whep_places import WhepPlaces
from server.metrics.scrape import Metrics
from server.settings import Settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    bus: EventBus
    media: MediaEngine
    whep_places: WhepPlaces
    attendance_log: AttendanceLog
    recordings: RecordingService
    link_holders: LinkHolders
    replay_meter: ReplayMeter
    token_watch: TokenWatch
    floor: FloorService
    question_rate: SubmitRate
    quality: QualityService
    metrics: Metrics
    webhooks: WebhookSender
