"""Wire formats between the ingest process and media worker processes.

Control: length-prefixed JSON messages over a Unix stream socket (rare: sessions, sources, stats).
Media: one UDP datagram on 127.0.0.1 per source packet and worker: a 16-byte header + RTP payload.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

_len = struct.Struct("!I")
# source id, seq, timestamp, marker, keyframe, 2 spare bytes
PACKET_HEADER = struct.Struct("!IHIBBxx")
MAX_MESSAGE = 16 * 1024 * 1024


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
