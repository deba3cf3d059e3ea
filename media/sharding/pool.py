"""WorkerPool: spawns media worker processes and shards consumers over them.

The ingest process keeps the producers and its own share of consumers; every source packet is
mirrored to the workers that serve that conference, a burst per local datagram (media.sharding.channel), so
forwarding (the expensive, per-subscriber part) runs on every core without the GIL in the way.

Both channels to a worker are socketpairs it inherits: they have no address, so no other process
can feed a worker media (as any local process could a 127.0.0.1 UDP port) or pose as a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import socket
import time
from collections.abc import Callable
from typing import Any

from media.sharding.worker import worker_main
from media.sharding.channel import bursts, pack_packet, read_message, write_message
from media.core.router import TRACKS, Router
from media.core.session import SubscriberIdentity
from media.core.source import NTP_EPOCH_OFFSET, SourceStream
from media.transport.port_range import PortsExhausted

log = logging.getLogger(__name__)


MIRROR_BUFFER = 8 * 1024 * 1024  # bytes of mirror datagrams a worker may have yet to read
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)  # Linux's number; Python does not name it


def mirror_socketpair() -> tuple[socket.socket, socket.socket]:
    """(ours, the worker's): a connected Unix datagram pair for the mirror. Datagrams sent and not
    yet read count against the sender's buffer (a pair has no per-queue datagram limit), so ours
    is the deep one; as root past net.core.wmem_max, as media.transport.ice does for the ICE sockets."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        ours.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, MIRROR_BUFFER)
    except OSError:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, MIRROR_BUFFER)
    ours.setblocking(False)
    return ours, theirs


class WorkerHandle:
    def __init__(self, index: int, process: multiprocessing.process.BaseProcess, media: socket.socket) -> None:
        self.index = index
        self.process = process
        self.pid = process.pid
        self.media = media  # our end of the worker's media socketpair
        self.writer: asyncio.StreamWriter | None = None
        self.consumers: dict[str, "RemoteConsumer"] = {}
        # the worker's own figures as of the last stats (MediaEngine.process_stats, packets per read)
        self.stats: dict = {}
        self.joining = 0  # subscribe requests in flight (a join storm must not pile onto one worker)
        self.ready = asyncio.Event()

    @property
    def load(self) -> int:
        return len(self.consumers) + self.joining


class RemoteConsumer(SubscriberIdentity):
    """Stand-in, in the ingest process, for a consumer that lives in a worker process."""

    def __init__(self, pool: "WorkerPool", worker: WorkerHandle, consumer_id: str, conference_id: str,
                 answer_sdp: str, role: str, name: str) -> None:
        self.pool = pool
        self.worker = worker
        self.id = consumer_id
        self.conference_id = conference_id
        self.answer_sdp = answer_sdp
        SubscriberIdentity.__init__(self, role, name)
        self.last_stats: dict = {}
        self._closed = False
        self.on_close: list[Callable[[Any], None]] = []
        self.rendition = "full"  # as the worker last reported it
        self.pinned: str | None = None
        self.on_rendition: list[Callable[[Any, str, str], None]] = []

    @property
    def closed(self) -> bool:
        return self._closed

    def stats(self) -> dict:
        return {**self.last_stats, "rendition": self.rendition, "pinned": self.pinned, "worker": self.worker.index}

    def set_rendition(self, pin: str | None) -> None:
        """Pin a rendition in the worker (media.egress.consumer.Consumer.set_rendition)."""
        if self.worker.writer is not None:
            write_message(self.worker.writer, {"op": "rendition", "id": self.id, "pin": pin})

    def page_report(self, frozen_share: float) -> None:
        """The page's freezes, to adaptation in the worker (media.egress.consumer.Consumer.page_report)."""
        if self.worker.writer is not None:
            write_message(self.worker.writer, {"op": "page", "id": self.id, "frozen": frozen_share})

    def hear(self, track: str) -> None:
        """Take the audio from ``track`` in the worker (media.egress.consumer.Consumer.hear)."""
        if self.worker.writer is not None:
            write_message(self.worker.writer, {"op": "hear", "id": self.id, "track": track})

    def _rendition_changed(self, rendition: str, pinned: str | None, reason: str) -> None:
        self.rendition, self.pinned = rendition, pinned
        for cb in self.on_rendition:
            try:
                cb(self, rendition, reason)
            except Exception:
                log.exception("remote consumer rendition callback failed")

    async def close(self) -> None:
        if self._closed:
            return
        if self.worker.writer is not None:
            write_message(self.worker.writer, {"op": "close", "id": self.id})
        self._gone()

    def _gone(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.worker.consumers.pop(self.id, None)
        for cb in self.on_close:
            try:
                cb(self)
            except Exception:
                log.exception("remote consumer close callback failed")


class WorkerPool:
    def __init__(self, count: int, config: Any) -> None:
        self.count = count
        self.config = config
        self.workers: list[WorkerHandle] = []
        self.sources: dict[int, tuple[Router, SourceStream]] = {}
        self.routers: list[Router] = []  # attached: their selections are mirrored
        self.demand: dict[tuple[int, str], int] = {}  # (worker, conference) -> its points on the low rendition
        self.demand_listeners: list[Callable[[str], None]] = []  # (conference) when a worker's count changes
        self._req = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._tasks: list[asyncio.Future] = []  # one per worker: reads its control messages
        self._stopping = False  # stop() closed the control sockets: a worker leaving is expected
        self._targets: dict[str, list[socket.socket]] = {}
        self.mirror_drops = 0  # packets a worker's socket did not take (its consumers NACK them)
        self.mirror_sends = 0

    async def start(self, timeout: float = 90.0) -> None:  # spawned workers import aiortc and PyAV: slow on a busy machine
        ctx = multiprocessing.get_context("spawn")

        for index in range(1, self.count + 1):
            control, worker_control = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            media, worker_media = mirror_socketpair()
            # spawn hands the worker's ends over as inherited descriptors (multiprocessing.reduction)
            process = ctx.Process(target=worker_main, args=(index, self.config, worker_control, worker_media),
                                  daemon=True)
            process.start()
            worker_control.close()  # the worker's alone now: its exit is our EOF
            worker_media.close()
            worker = WorkerHandle(index, process, media)
            self.workers.append(worker)
            self._tasks.append(asyncio.ensure_future(self._serve(worker, control)))
        await asyncio.wait_for(asyncio.gather(*(w.ready.wait() for w in self.workers)), timeout)
        log.info("media workers ready: %s", [(w.index, w.pid) for w in self.workers])

    async def _serve(self, worker: WorkerHandle, control: socket.socket) -> None:
        reader, writer = await asyncio.open_unix_connection(sock=control)
        hello = await read_message(reader)
        if not hello or hello.get("op") != "hello":
            log.warning("media worker %d did not start", worker.index)
            writer.close()
            return
        worker.writer = writer
        for router, source in self.sources.values():
            self._announce(worker, router, source)
        for router in self.routers:  # what each track carries now, then what it switches to
            for track in TRACKS:
                for chosen in (router.active[track], router.pending[track]):
                    if chosen is not None and chosen.id in self.sources:
                        self._select(worker, router, track, chosen)
        worker.ready.set()
        while True:
            message = await read_message(reader)
            if message is None:
                break
            self._on_message(worker, message)
        if self._stopping:
            log.info("media worker %d stopped", worker.index)
        else:
            log.warning("media worker %d disconnected", worker.index)
        worker.writer = None
        for consumer in list(worker.consumers.values()):
            consumer._gone()
        self._rebuild_targets()

    def _on_message(self, worker: WorkerHandle, m: dict) -> None:
        op = m.get("op")
        if op == "reply":
            future = self._pending.pop(m["req"], None)
            if future is not None and not future.done():
                future.set_result(m)
        elif op == "keyframe":
            entry = self.sources.get(m["source"])
            if entry is not None:  # the low rendition's source (transcoder or publisher) makes its own
                router, source = entry
                low = source is router.active["low"] or source is router.pending["low"]
                router.request_keyframe(track="low" if low else "video")
        elif op == "closed":
            consumer = worker.consumers.get(m["id"])
            if consumer is not None:
                consumer._gone()
                self._rebuild_targets()
        elif op == "rendition":
            consumer = worker.consumers.get(m["id"])
            if consumer is not None:
                consumer._rendition_changed(m["rendition"], m.get("pinned"), m.get("reason", "adapt"))
        elif op == "demand":
            self.demand[(worker.index, m["conference"])] = int(m["count"])
            for listener in self.demand_listeners:
                listener(m["conference"])

    async def _request(self, worker: WorkerHandle, message: dict, timeout: float = 20.0) -> dict:
        if worker.writer is None:
            raise ConnectionError(f"media worker {worker.index} is not connected")
        req = next(self._req)
        future = asyncio.get_running_loop().create_future()
        self._pending[req] = future
        write_message(worker.writer, {**message, "req": req})
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(req, None)

    # --- sources and packets -------------------------------------------------------------------
    def attach(self, router: Router) -> None:
        conference_id = router.conference_id
        queued: list[bytes] = []  # a batched router's packets, mirrored when it flushes (one burst)
        router.packet_taps.append(
            lambda source, seq, ts, marker, payload, key: self._tap(
                conference_id, source, seq, ts, marker, payload, key, queued if router.batched else None
            )
        )
        router.flush_listeners.append(lambda: self._mirror(conference_id, queued))
        router.source_listeners.append(lambda change, source: self._source_changed(router, change, source))
        router.selection_listeners.append(lambda track, source: self._selected(router, track, source))
        self.routers.append(router)

    def _announce(self, worker: WorkerHandle, router: Router, source: SourceStream) -> None:
        if worker.writer is None:
            return
        write_message(
            worker.writer,
            {"op": "source", "id": source.id, "conference": router.conference_id, "kind": source.kind,
             "codec": source.codec, "clock_rate": source.clock_rate, "producer": source.producer_id},
        )
        if source.sr_ntp is not None:
            self._send_sr(worker, source)

    def _selected(self, router: Router, track: str, source: SourceStream | None) -> None:
        for worker in self.workers:
            self._select(worker, router, track, source)

    @staticmethod
    def _select(worker: WorkerHandle, router: Router, track: str, source: SourceStream | None) -> None:
        if worker.writer is not None:
            write_message(
                worker.writer,
                {"op": "select", "conference": router.conference_id, "track": track,
                 "id": source.id if source is not None else None},
            )

    def _send_sr(self, worker: WorkerHandle, source: SourceStream) -> None:

        ntp = int((source.sr_ntp + NTP_EPOCH_OFFSET) * (1 << 32))  # type: ignore[operator]
        write_message(worker.writer, {"op": "sr", "id": source.id, "ntp": ntp, "rtp": source.sr_rtp})  # type: ignore[arg-type]

    def _source_changed(self, router: Router, change: str, source: SourceStream) -> None:
        if change == "add":
            self.sources[source.id] = (router, source)
            for worker in self.workers:
                self._announce(worker, router, source)
        elif change == "remove":
            self.sources.pop(source.id, None)
            for worker in self.workers:
                if worker.writer is not None:
                    write_message(worker.writer, {"op": "source_end", "id": source.id})
        elif change == "sr":
            for worker in self.workers:
                if worker.writer is not None:
                    self._send_sr(worker, source)

    def _tap(self, conference_id: str, source: SourceStream, seq: int, ts: int, marker: int,
             payload: bytes, key: bool, queued: list[bytes] | None) -> None:
        if not self._targets.get(conference_id):
            return
        data = pack_packet(source.id, seq, ts, marker, key, payload)
        if queued is not None:
            queued.append(data)
        else:
            self._send(conference_id, data, 1)

    def _mirror(self, conference_id: str, queued: list[bytes]) -> None:
        """The burst in one datagram per worker (media.sharding.channel), several if it is larger than one holds."""
        if not queued:
            return
        for datagram, packets in bursts(queued):  # (one packet: joining it returns it, no copy)
            self._send(conference_id, datagram, packets)
        queued.clear()

    def _send(self, conference_id: str, data: bytes, packets: int) -> None:
        for sock in self._targets.get(conference_id, ()):
            try:
                sock.send(data)
                self.mirror_sends += 1
            except OSError:  # buffer full: the worker's consumers will NACK it from their mirror
                self.mirror_drops += packets

    def _rebuild_targets(self) -> None:
        targets: dict[str, list[socket.socket]] = {}
        for worker in self.workers:
            if worker.writer is None:
                continue
            for conference in {c.conference_id for c in worker.consumers.values()}:
                targets.setdefault(conference, []).append(worker.media)
        self._targets = targets

    # --- consumers -------------------------------------------------------------------------------
    def least_loaded(self, local_consumers: int, ingest_share: float = 1.0) -> WorkerHandle | None:
        """The worker with the fewest consumers, or None when the ingest process should take this one.

        The ingest process also receives the speaker, serves the API and records, so it counts as
        ``ingest_share`` of a worker: at 0.5 it would hold half as many subscribers as each worker. At 0
        (the default) it holds none while a worker is up, so its event loop stays responsive to the
        speaker during a join storm: the speaker's packets reach every worker without waiting behind
        handshakes, and a keyframe asked for a joiner is not held up either.
        """
        live = [w for w in self.workers if w.writer is not None]
        if not live:
            return None
        best = min(live, key=lambda w: w.load)
        if ingest_share > 0 and local_consumers < ingest_share * best.load:
            return None
        return best

    async def subscribe(self, worker: WorkerHandle, conference_id: str, offer: str, role: str, name: str) -> RemoteConsumer:
        worker.joining += 1
        try:
            reply = await self._request(
                worker, {"op": "subscribe", "conference": conference_id, "offer": offer, "role": role, "name": name}
            )
        finally:
            worker.joining -= 1
        if "error" in reply:
            raise (PortsExhausted if reply.get("ports_exhausted") else RuntimeError)(reply["error"])
        consumer = RemoteConsumer(self, worker, reply["id"], conference_id, reply["answer"], role, name)
        worker.consumers[consumer.id] = consumer
        self._rebuild_targets()
        return consumer

    async def refresh_stats(self) -> dict[str, int]:
        """Pull per-consumer counters from every worker; returns the workers' codec audits merged."""
        codecs: dict[str, int] = {}
        for worker in self.workers:
            if worker.writer is None:
                continue
            try:
                reply = await self._request(worker, {"op": "stats"}, timeout=5)
            except (asyncio.TimeoutError, ConnectionError):
                continue
            for cid, stats in reply.get("consumers", {}).items():
                if cid in worker.consumers:
                    worker.consumers[cid].last_stats = stats
            for name, n in reply.get("codec_instances", {}).items():
                codecs[name] = codecs.get(name, 0) + n
            worker.stats = reply.get("process", {})
        return codecs

    async def stop(self, timeout: float = 5.0) -> None:
        """Close the control sockets (workers exit on EOF) and wait for them without blocking the loop.

        A blocking ``join`` here would keep the loop from actually closing the sockets, so every
        worker would sit out the whole timeout.
        """
        self._stopping = True
        for worker in self.workers:
            if worker.writer is not None:
                worker.writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(worker.writer.wait_closed(), 1.0)
        deadline = time.monotonic() + timeout
        for worker in self.workers:
            while worker.process.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if worker.process.is_alive():
                worker.process.kill()
            worker.process.join(timeout=1)
            worker.media.close()
        for task in self._tasks:
            task.cancel()
