"""MediaEngine: owns the routers (one per conference) and the WHIP/WHEP sessions of this process."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiortc import RTCPeerConnection

from media.aiortc_compat import register_forwarding_codecs
from media.core.router import Router
from media.core.source import SourceStream
from media.core.sdp_check import check_offer
from media.egress import fanout
from media.egress.consumer import Consumer
from media.egress.fanout_group import FanoutGroup
from media.floor.stage import Stage
from media.renditions.keeper import RenditionKeeper
from media.ingest import frame_tap, remb_throttle
from media.ingest.producer import Producer
from media.runtime import codec_audit, gc_pauses
from media.runtime.session_garbage import SessionGarbage
from media.transport import dtls_identity, host_candidates
from media.transport.handshake_gate import HandshakeGate
from media.transport.ice import restrict_host_addresses, rtc_configuration

log = logging.getLogger(__name__)


@dataclass
class EngineConfig:
    ice_servers: list[dict] = field(default_factory=list)
    ice_host_addresses: list[str] = field(default_factory=list)
    ice_udp_port: int = 0  # this process's one ICE UDP port (media.transport.udp_mux; 0: a port per peer)
    ice_port_range: str = ""  # "first-last": every ICE host port inside it (media.transport.port_range)
    ice_public_addresses: list[str] = field(default_factory=list)  # advertised as host candidates too (1:1 NAT)
    keyframe_interval: float = 1.0
    consumer_timeout: float = 30.0  # seconds without RTCP from a subscriber before it is dropped
    ingest_share: float = 0.0  # subscribers on the ingest process, relative to one worker (0: none while workers run)
    fast_start: float = 1.0  # a video joiner replays the current GOP when it began this recently (0: off)
    send_batches: str = "gso"  # how a burst leaves for each subscriber: gso | sendmmsg | sendto
    rtp_pad_max: int = 8  # padding bytes that may even out a burst's packet sizes for GSO (0: off)
    max_handshakes: int = 64  # ICE/DTLS handshakes a process runs at once (media.transport.handshake_gate; 0: no bound)
    session_gc_interval: float = 10.0  # at most one full collection this often after closes (media.runtime.session_garbage)
    transcode: bool = True  # this process makes the low renditions (the ingest; workers do not)
    adapt: bool = True  # points' video follows what their links carry (media.renditions.adaptation)
    low_size: tuple[int, int] = (640, 360)  # the low rendition (media.renditions)
    low_bitrate: int = 450_000
    transcode_idle: float = 30.0  # seconds a transcoder outlives its last point on the low rendition


class ConsumerPool(Protocol):
    """Worker processes that take subscribers off this one (media.sharding.pool.WorkerPool)."""

    def attach(self, router: Router) -> None: ...
    def least_loaded(self, local_consumers: int, ingest_share: float = 1.0) -> Any: ...
    async def subscribe(self, worker: Any, conference_id: str, offer: str, role: str, name: str) -> Any: ...
    demand: dict[tuple[int, str], int]  # (worker, conference) -> its points on the low rendition
    demand_listeners: list[Callable[[str], None]]
    async def stop(self, timeout: float = 5.0) -> None: ...


class MediaEngine:
    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        register_forwarding_codecs()
        codec_audit.install()
        frame_tap.install()
        remb_throttle.install()
        gc_pauses.install()
        restrict_host_addresses(config.ice_host_addresses)
        host_candidates.configure(config.ice_udp_port, config.ice_port_range, config.ice_public_addresses)
        log.info("fan-out loop: %s", "C (media.native._fastpath)" if fanout.enabled() else "Python (C fast path not built)")
        fanout.send_mode(config.send_batches)
        fanout.pad_max(config.rtp_pad_max)
        self.routers: dict[str, Router] = {}
        self.stages: dict[str, Stage] = {}  # per router: the speaker, or a dialogue with a point
        self.producers: dict[str, Producer] = {}
        self.consumers: dict[str, Any] = {}  # Consumer here, or RemoteConsumer in a worker
        self._joining = 0  # local subscribers still negotiating (counted when sharding a storm)
        self.handshakes = HandshakeGate(config.max_handshakes)
        self.garbage = SessionGarbage(interval=config.session_gc_interval)
        # Hooks for the server layer (events, attendance, recording, the floor).
        self.on_producer: list[Callable[[str, Producer, bool], None]] = []
        self.on_floor: list[Callable[[str, Producer, str], None]] = []  # the point "live" | "stalled"
        # (conference, consumer, rendition, "pin" | "adapt"): a point's video changed rendition
        self.on_rendition: list[Callable[[str, Any, str, str], None]] = []
        # (conference, this process's points on the low rendition) when that count changes
        self.on_demand: list[Callable[[str, int], None]] = []
        self.on_consumer: list[Callable[[str, Consumer, bool], None]] = []
        self.pool: ConsumerPool | None = None
        self._watchdog: asyncio.Task | None = None
        self.renditions: RenditionKeeper | None = None
        if config.transcode:
            self.renditions = RenditionKeeper(
                self.router, self.low_demand, self._published_low, config.transcode_idle, config.low_size,
                config.low_bitrate,
            )
            self.on_demand.append(self.renditions.changed)

    def start(self) -> None:
        """Start background duties (needs a running loop)."""
        if self._watchdog is None:
            self._watchdog = asyncio.ensure_future(self._watch_consumers())
            host_candidates.open_sockets()

    async def _watch_consumers(self) -> None:
        timeout = self.config.consumer_timeout
        while True:
            await asyncio.sleep(min(2.0, timeout / 2))
            now = time.time()
            for consumer in [c for c in self.consumers.values() if isinstance(c, Consumer)]:
                if consumer.is_silent(now, timeout):
                    log.info("dropping consumer %s: no RTCP for %.0f s", consumer.id, timeout)
                    await consumer.close()

    def attach_pool(self, pool: ConsumerPool) -> None:
        """Shard subscribers over ``pool``'s started worker processes (the server builds it)."""
        self.pool = pool
        for router in self.routers.values():
            pool.attach(router)
        if self.renditions is not None:
            pool.demand_listeners.append(self.renditions.changed)

    def router(self, conference_id: str) -> Router:
        router = self.routers.get(conference_id)
        if router is None:
            groups = partial(FanoutGroup, fast_start=self.config.fast_start)
            router = Router(conference_id, groups, self.config.keyframe_interval)
            router.batched = True  # fed by producers (flush per burst) or a worker's reads (per read)
            self.routers[conference_id] = router
            router.demand_listeners.append(lambda track, count: self._notify(self.on_demand, conference_id, count))
            if self.renditions is not None:  # the program's picture decides where its low rendition comes from
                router.selection_listeners.append(partial(self.renditions.selected, conference_id))
            if self.pool is not None:
                self.pool.attach(router)
        return router

    def low_demand(self, conference_id: str) -> int:
        """Points on the conference's low rendition, in this process and (ingest) its workers, and
        the low track's readers (the live HLS low variant's recorder)."""
        router = self.routers.get(conference_id)
        local = router.low_demand() if router is not None else 0
        remote = sum(n for (_, conf), n in self.pool.demand.items() if conf == conference_id) if self.pool else 0
        return local + remote

    def _published_low(self, picture: SourceStream) -> SourceStream | None:
        """The low rendition that ``picture``'s publisher sends beside it (media.ingest.producer)."""
        producer = self.producers.get(picture.producer_id)
        return producer.low if producer is not None and producer.sources.get("video") is picture else None

    def low_rendition(self, conference_id: str) -> str:
        """How the conference's low rendition is made now: "publisher" (its own second video
        track), "transcode" (this server) or "none"."""
        if self.renditions is None or conference_id not in self.routers:
            return "none"
        return self.renditions.made_by(conference_id)

    def set_rendition(self, consumer_id: str, pin: str | None) -> bool:
        """Pin what a point's video receives ("full", "low", "audio"; None: adaptation decides);
        False for an unknown consumer. Works for consumers in worker processes too."""
        consumer = self.consumers.get(consumer_id)
        if consumer is None:
            return False
        consumer.set_rendition(pin)
        return True

    def stage(self, conference_id: str) -> Stage:
        """The conference's program (ingest process only: the workers follow its selections)."""
        stage = self.stages.get(conference_id)
        if stage is None:
            stage = self.stages[conference_id] = Stage(self.router(conference_id))
            stage.listeners.append(lambda point, state: self._notify(self.on_floor, conference_id, point, state))
            stage.listeners.append(lambda point, state: self._point_hears(conference_id, point.subject_id, state == "live"))
        return stage

    def _point_hears(self, conference_id: str, point_id: str | None, dialogue: bool) -> None:
        """The floor point's own playback takes the hall's voice alone during its dialogue."""
        if point_id is None:
            return
        for consumer in list(self.consumers.values()):
            if consumer.conference_id == conference_id and consumer.subject_id == point_id and consumer.role == "point":
                consumer.hear("to_point" if dialogue else "audio")

    def process_stats(self) -> dict[str, Any]:
        """This process's own figures for /api/v1/media/stats: collector pauses, handshake gate, and
        the asyncio tasks alive (a soak watches them: a task left behind per session is a leak)."""
        return {"gc": gc_pauses.snapshot(), "session_gc": self.garbage.stats(), "handshakes": self.handshakes.stats(),
                "tasks": len(asyncio.all_tasks()), "ice_sockets": host_candidates.stats(),
                "transcoders": self.renditions.stats() if self.renditions is not None else {},
                "low_renditions": {conf: self.low_rendition(conf) for conf in self.routers} if self.renditions else {}}

    def _pc(self) -> RTCPeerConnection:
        return dtls_identity.peer_connection(rtc_configuration(self.config.ice_servers))

    async def publish(
        self, conference_id: str, offer_sdp: str, role: str = "speaker", subject_id: str | None = None
    ) -> Producer:
        """WHIP: answer a publisher's offer. The hall's (``role`` "speaker") replaces the conference's
        previous speaker; a point holding the floor (``role`` "point", ``subject_id`` its id) joins
        the speaker in a dialogue and replaces a previous point's. Who may publish is the server's
        decision."""
        if role not in ("speaker", "point"):
            raise ValueError(f"unknown publisher role {role!r}")
        check_offer(offer_sdp, "send")
        router = self.router(conference_id)
        producer = Producer(router, self._pc(), role, subject_id)
        producer.on_close.append(self.garbage.closed)
        try:
            producer.answer_sdp = await producer.answer(offer_sdp)  # type: ignore[attr-defined]
        except Exception:
            await producer.close()
            raise
        for old in [p for p in self.producers.values() if p.router is router and p.role == role]:
            await old.close()
        self.producers[producer.id] = producer
        stage = self.stage(conference_id)
        if role == "speaker":
            stage.speaker_on(producer)
            producer.on_close.append(stage.speaker_off)
        else:
            stage.point_on(producer)
            producer.on_close.append(stage.point_off)
        producer.on_close.append(lambda p: self._producer_closed(conference_id, p))
        self._notify(self.on_producer, conference_id, producer, True)
        return producer

    async def end_floor(self, conference_id: str) -> None:
        """Close the floor point's producer, if any: the program goes back to the speaker. The
        next point starts unmuted."""
        stage = self.stages.get(conference_id)
        if stage is None:
            return
        stage.muted = False
        if stage.point is not None:
            await stage.point.close()  # type: ignore[attr-defined]

    def mute_floor(self, conference_id: str, muted: bool) -> None:
        """The chair's mute of the point holding the floor (a re-publish of the same floor stays
        muted; ``end_floor`` clears it)."""
        self.stage(conference_id).mute(muted)

    def _producer_closed(self, conference_id: str, producer: Producer) -> None:
        self.producers.pop(producer.id, None)
        self._notify(self.on_producer, conference_id, producer, False)

    async def subscribe(
        self,
        conference_id: str,
        offer_sdp: str,
        role: str = "point",
        name: str = "",
        owner: str | None = None,
        subject_id: str | None = None,
    ) -> Any:
        """WHEP: answer a subscriber's offer; media starts whenever the router has a source.

        ``owner`` (token id) and ``subject_id`` (point or member) are set before listeners hear of
        the consumer, so presence and attendance events name who joined.
        """
        check_offer(offer_sdp, "recv")
        router = self.router(conference_id)
        local = self._joining + sum(1 for c in self.consumers.values() if isinstance(c, Consumer))
        worker = self.pool.least_loaded(local, self.config.ingest_share) if self.pool is not None else None
        if worker is not None:
            consumer = await self.pool.subscribe(worker, conference_id, offer_sdp, role, name)  # type: ignore[union-attr]
        else:
            self._joining += 1
            try:
                release = await self.handshakes.enter()
                consumer = Consumer(router, self._pc(), role=role, name=name, adapt=self.config.adapt)
                consumer.on_close.append(self.garbage.closed)
                consumer.on_connected.append(release)
                consumer.on_close.append(lambda c: release())
                try:
                    consumer.answer_sdp = await consumer.answer(offer_sdp)  # type: ignore[attr-defined]
                except Exception:
                    await consumer.close()
                    raise
            finally:
                self._joining -= 1
        consumer.owner = owner
        consumer.subject_id = subject_id
        consumer.on_rendition.append(partial(self._notify, self.on_rendition, conference_id))
        self.consumers[consumer.id] = consumer
        stage = self.stages.get(conference_id)
        if stage is not None and stage.on_air and stage.point is not None and subject_id == stage.point.subject_id \
                and role == "point":
            consumer.hear("to_point")  # it joined during its own dialogue
        consumer.on_close.append(lambda c: self._consumer_closed(conference_id, c))
        self._notify(self.on_consumer, conference_id, consumer, True)
        return consumer

    def _consumer_closed(self, conference_id: str, consumer: Consumer) -> None:
        self.consumers.pop(consumer.id, None)
        self._notify(self.on_consumer, conference_id, consumer, False)

    @staticmethod
    def _notify(callbacks: list, *args: Any) -> None:
        """Call every server hook with ``args``; one that fails is logged and the others still run."""
        for cb in callbacks:
            try:
                cb(*args)
            except Exception:
                log.exception("media engine callback failed")

    def consumer_count(self, conference_id: str) -> int:
        return sum(1 for c in self.consumers.values() if c.conference_id == conference_id)

    def is_live(self, conference_id: str) -> bool:
        """The hall is publishing (a point on the floor alone is not a live conference)."""
        return any(p.conference_id == conference_id and p.role == "speaker" for p in self.producers.values())

    async def close_session(self, conference_id: str, session_id: str) -> bool:
        session = self.producers.get(session_id) or self.consumers.get(session_id)
        if session is None or session.conference_id != conference_id:
            return False
        await session.close()
        return True

    async def shutdown(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        self.garbage.cancel()
        for session in [*self.producers.values(), *self.consumers.values()]:
            await session.close()
        if self.pool is not None:
            await self.pool.stop()
        for stage in self.stages.values():
            stage.close()
        if self.renditions is not None:
            self.renditions.close()
        for router in self.routers.values():
            router.close()
