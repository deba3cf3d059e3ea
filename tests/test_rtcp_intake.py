"""run_inline: RTCP handlers run to completion where the datagram arrives (media.rtcp_intake).

The intake itself is exercised end to end by tests/test_relay.py (receiver reports reach the link
quality numbers, NACKs are answered from the history) against real aiortc subscribers.
"""

from __future__ import annotations

import asyncio

from media.rtcp_intake import run_inline


def test_a_handler_that_never_waits_completes_in_place():
    done = []

    async def handler() -> None:
        async def inner() -> None:
            done.append("inner")  # awaiting a coroutine that does not suspend is fine

        await inner()
        done.append("outer")

    assert run_inline(handler())
    assert done == ["inner", "outer"]


def test_a_handler_that_suspends_is_closed_not_left_half_run():
    closed = []

    async def handler() -> None:
        try:
            await asyncio.sleep(0)  # yields to the event loop: not something an RTCP handler may do
        finally:
            closed.append(True)

    assert not run_inline(handler())
    assert closed == [True]
