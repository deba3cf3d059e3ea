"""Two real aioice peers connected over 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aioice

from media.transport.ice import restrict_host_addresses


async def connected_pair(prepare: Callable[[aioice.Connection], None] | None = None,
                         ) -> tuple[aioice.Connection, aioice.Connection]:
    """(point, server): the point is the offerer (controlling, a WHEP client), the server answers.
    ``prepare`` is applied to both before they gather (e.g. to install our consent checks)."""
    restrict_host_addresses(["127.0.0.1"])
    point = aioice.Connection(ice_controlling=True, components=1)
    server = aioice.Connection(ice_controlling=False, components=1)
    if prepare is not None:
        for connection in (point, server):
            prepare(connection)
    await asyncio.gather(point.gather_candidates(), server.gather_candidates())
    for a, b in ((point, server), (server, point)):
        for candidate in a.local_candidates:
            await b.add_remote_candidate(candidate)
        await b.add_remote_candidate(None)
        b.remote_username, b.remote_password = a.local_username, a.local_password
    await asyncio.wait_for(asyncio.gather(point.connect(), server.connect()), 10)
    return point, server
