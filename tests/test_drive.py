"""drive: SRTP/SRTCP handlers run to completion where the datagram arrives (media.transport.drive).

The transport that calls them is exercised by tests/test_webrtc_transport.py and end to end by
tests/test_relay.py (the speaker's packets reach the subscribers and the recorder, receiver reports
reach the link quality numbers, NACKs are answered from the history) against real aiortc peers.
"""

from __future__ import annotations

import asyncio

from media.transport.drive import drive


def test_a_handler_that_never_waits_completes_in_place():
    done = []

    async def handler() -> None:
        async def inner() -> None:
            done.append("inner")  # awaiting a coroutine that does not suspend is fine

        await inner()
        done.append("outer")

    assert drive(handler())
    assert done == ["inner", "outer"]


def test_a_handler_that_waits_goes_on_on_the_loop():
    async def scenario() -> list[str]:
        done: list[str] = []
        gate = asyncio.get_running_loop().create_future()

        async def handler() -> None:
            done.append("before")
            await asyncio.sleep(0)  # a bare yield
            done.append("after yield")
            done.append(await gate)  # a future
            done.append("end")

        assert not drive(handler())
        assert done == ["before"]
        await asyncio.sleep(0.01)
        assert done == ["before", "after yield"]
        gate.set_result("gate")
        await asyncio.sleep(0.01)
        return done

    assert asyncio.run(scenario()) == ["before", "after yield", "gate", "end"]


def test_a_failing_handler_is_logged_not_raised(caplog):
    async def handler() -> None:
        raise RuntimeError("boom")

    assert drive(handler())
    assert "SRTP handler failed" in caplog.text
