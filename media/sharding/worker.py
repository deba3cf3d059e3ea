"""Media worker process: owns a share of the consumers and forwards to them on its own core.

It mirrors the ingest's sources (same ids, same history) from the packet datagrams, so NACKs and
keyframe gating are answered locally; only keyframe requests travel back to the ingest.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import socket
from typing import Any

from media.egress import fanout
from media.runtime import gc_pauses
from media.engine import EngineConfig, MediaEngine
from media.sharding.channel import read_message, unpack_burst, write_message
from media.core.source import SourceStream
from media.transport.port_range import PortsExhausted

log = logging.getLogger(__name__)


class _RemoteKeyframes:
    """Keyframe requests of this worker's consumers go to the ingest, which merges them globally."""

    def __init__(self, writer: asyncio.StreamWriter, source_id: int) -> None:
        self.writer = writer
        self.source_id = source_id

    def request_keyframe(self) -> None:
        write_message(self.writer, {"op": "keyframe", "source": self.source_id})


READ_BATCH = fanout.BATCH  # packets read per wake-up (whole datagrams) before the batch is flushed


class PacketReader:
    """Reads the ingest's burst datagrams (media.sharding.channel), then flushes the routers they went to.

    Everything that arrived while the worker was busy goes out in one batch per subscriber, so the
    busier the worker, the fewer send calls per packet; an idle worker still sends each burst at once.
    """

    def __init__(self, worker: "Worker", sock: socket.socket) -> None:
        self.worker = worker
        self.sock = sock
        self.batches = 0
        self.packets = 0

    def read_ready(self) -> None:
        recv = self.sock.recv
        sources = self.worker.sources
        touched = []
        count = 0
        try:
            while count < READ_BATCH:
                try:
                    data = recv(65536)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:  # the ingest closed its end: its control socket's EOF ends us
                    break
                for source_id, seq, ts, marker, key, payload in unpack_burst(data):
                    count += 1
                    entry = sources.get(source_id)
                    if entry is None:
                        continue
                    router, source = entry
                    if router not in touched:
                        touched.append(router)
                    try:
                        router.on_rtp(source, seq, ts, marker, payload, bool(key))
                    except Exception:
                        log.exception("worker forwarding failed")
        finally:
            for router in touched:
                try:
                    router.flush()
                except Exception:
                    log.exception("worker flush failed")
            if count:
                self.batches += 1
                self.packets += count


class Worker:
    def __init__(self, index: int, config: EngineConfig) -> None:
        self.index = index
        # the ingest transcodes; with ICE_UDP_PORT each process has a port of its own, the ingest's + index
        port = config.ice_udp_port + index if config.ice_udp_port else 0
        self.engine = MediaEngine(dataclasses.replace(config, transcode=False, ice_udp_port=port))
        self.sources: dict[int, tuple[Any, SourceStream]] = {}
        self.writer: asyncio.StreamWriter | None = None
        self.reader: PacketReader | None = None

    async def run(self, control: socket.socket, media: socket.socket) -> None:
        """Serve until the ingest closes ``control``; ``media`` carries its mirror (both inherited
        socketpair ends, media.sharding.pool: only the ingest can write to them)."""
        loop = asyncio.get_running_loop()
        media.setblocking(False)
        self.reader = PacketReader(self, media)
        loop.add_reader(media.fileno(), self.reader.read_ready)
        reader, writer = await asyncio.open_unix_connection(sock=control)
        self.writer = writer
        self.engine.on_consumer.append(self._consumer_changed)
        self.engine.on_rendition.append(self._rendition_changed)
        self.engine.on_demand.append(self._demand_changed)
        self.engine.start()
        gc_pauses.freeze_startup()
        write_message(writer, {"op": "hello", "index": self.index, "pid": os.getpid()})
        while True:
            message = await read_message(reader)
            if message is None:
                break  # the ingest process is gone: so are we
            asyncio.ensure_future(self._handle(message))
        loop.remove_reader(media.fileno())
        await self.engine.shutdown()
        media.close()

    def read_stats(self) -> dict[str, Any]:
        """Packets per wake-up: how much batching the send path gets (1.0 = none)."""
        r = self.reader
        batches, packets = (r.batches, r.packets) if r is not None else (0, 0)
        return {"batches": batches, "packets": packets, "send": fanout.send_mode()}

    def _consumer_changed(self, conference_id: str, consumer: Any, opened: bool) -> None:
        if not opened and self.writer is not None:
            write_message(self.writer, {"op": "closed", "id": consumer.id})

    def _rendition_changed(self, conference_id: str, consumer: Any, rendition: str, reason: str) -> None:
        if self.writer is not None:
            write_message(self.writer, {"op": "rendition", "id": consumer.id, "rendition": rendition,
                                        "pinned": consumer.pinned, "reason": reason})

    def _demand_changed(self, conference_id: str, count: int) -> None:
        if self.writer is not None:
            write_message(self.writer, {"op": "demand", "conference": conference_id, "count": count})

    async def _handle(self, m: dict[str, Any]) -> None:
        op = m.get("op")
        writer = self.writer
        assert writer is not None
        if op == "source":
            router = self.engine.router(m["conference"])
            source = SourceStream(m["kind"], m["codec"], m["clock_rate"], m.get("producer", ""), m["id"])
            self.sources[source.id] = (router, source)
            keyframes = _RemoteKeyframes(writer, source.id) if source.kind == "video" else None
            router.add_source(source, keyframes, select=False)  # the ingest's "select" follows
        elif op == "select":
            entry = self.sources.get(m["id"]) if m["id"] is not None else None
            if m["id"] is None or entry is not None:
                self.engine.router(m["conference"]).select(entry[1] if entry else None, m["track"])
        elif op == "source_end":
            entry = self.sources.pop(m["id"], None)
            if entry:
                entry[0].remove_source(entry[1])
        elif op == "sr":
            entry = self.sources.get(m["id"])
            if entry:
                entry[1].on_sender_report(m["ntp"], m["rtp"])
        elif op == "subscribe":
            try:
                consumer = await self.engine.subscribe(
                    m["conference"], m["offer"], role=m.get("role", "point"), name=m.get("name", "")
                )
                reply = {"op": "reply", "req": m["req"], "id": consumer.id, "answer": consumer.answer_sdp}
            except Exception as exc:
                reply = {"op": "reply", "req": m["req"], "error": str(exc) or type(exc).__name__,
                         "ports_exhausted": isinstance(exc, PortsExhausted)}
            write_message(writer, reply)
        elif op == "close":
            consumer = self.engine.consumers.get(m["id"])
            if consumer is not None:
                await consumer.close()
        elif op == "rendition":
            consumer = self.engine.consumers.get(m["id"])
            if consumer is not None:
                consumer.set_rendition(m["pin"])
        elif op == "page":
            consumer = self.engine.consumers.get(m["id"])
            if consumer is not None:
                consumer.page_report(float(m["frozen"]))
        elif op == "hear":
            consumer = self.engine.consumers.get(m["id"])
            if consumer is not None:
                consumer.hear(m["track"])
        elif op == "stats":
            from media.runtime import codec_audit

            write_message(
                writer,
                {
                    "op": "reply",
                    "req": m["req"],
                    "consumers": {c.id: c.stats() for c in self.engine.consumers.values()},
                    "codec_instances": codec_audit.snapshot(),
                    "process": {**self.engine.process_stats(), "reads": self.read_stats()},
                },
            )


def worker_main(index: int, config: EngineConfig, control: socket.socket, media: socket.socket) -> None:
    """Entry point of a spawned worker process."""
    logging.basicConfig(level=logging.WARNING, format=f"worker{index} %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    asyncio.run(Worker(index, config).run(control, media))
