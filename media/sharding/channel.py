"""Wire formats between the ingest process and media worker processes.

Control: length-prefixed JSON messages over a Unix stream socket (rare: sessions, sources, stats).
Media: datagrams over a Unix datagram socketpair from the ingest to each worker (the worker
inherits both pairs' ends: media.sharding.pool). A datagram carries a burst (the packets the ingest
flushes together: a frame, the audio that came with it), each packet as a 14-byte header + its RTP
payload, so a worker gets a burst in one read and one wake-up, and the ingest pays one send per
burst and worker instead of one per packet (or per GSO run: frames mix sizes). A burst over
BURST_MAX (a big keyframe) takes several datagrams.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

_len = struct.Struct("!I")
# source id, seq, timestamp, marker, keyframe, payload length
PACKET_HEADER = struct.Struct("!IHIBBH")
BURST_MAX = 60_000  # bytes of one media datagram (under UDP's 65507, so the format also fits UDP)
MAX_MESSAGE = 16 * 1024 * 1024


def pack_packet(source_id: int, seq: int, ts: int, marker: int, key: bool, payload: bytes) -> bytes:
    return PACKET_HEADER.pack(source_id, seq, ts, marker, key, len(payload)) + payload


def bursts(packets: list[bytes], limit: int = BURST_MAX) -> list[tuple[bytes, int]]:
    """Packed packets (``pack_packet``) joined, in order, into as few datagrams of at most ``limit``
    bytes as fit; each with the number of packets it carries."""
    out: list[tuple[bytes, int]] = []
    chunk: list[bytes] = []
    size = 0
    for packet in packets:
        if chunk and size + len(packet) > limit:
            out.append((b"".join(chunk), len(chunk)))
            chunk, size = [], 0
        chunk.append(packet)
        size += len(packet)
    if chunk:
        out.append((b"".join(chunk), len(chunk)))
    return out


def unpack_burst(data: bytes) -> list[tuple[int, int, int, int, int, bytes]]:
    """(source id, seq, ts, marker, key, payload) of each packet of a datagram; a truncated or
    malformed tail is dropped (the workers' consumers NACK what is missing from their mirror)."""
    out = []
    pos, end, head = 0, len(data), PACKET_HEADER.size
    while pos + head <= end:
        source_id, seq, ts, marker, key, size = PACKET_HEADER.unpack_from(data, pos)
        pos += head
        if pos + size > end:
            break
        out.append((source_id, seq, ts, marker, key, data[pos : pos + size]))
        pos += size
    return out


async def read_message(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    try:
        head = await reader.readexactly(_len.size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    (size,) = _len.unpack(head)
    if size > MAX_MESSAGE:
        raise ValueError("control message too large")
    try:
        body = await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return json.loads(body)


def write_message(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    body = json.dumps(message, separators=(",", ":")).encode()
    writer.write(_len.pack(len(body)) + body)
