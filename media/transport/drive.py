"""drive: a packet handler's coroutine run to completion where the datagram arrived.

aiortc's receiver and sender handlers are coroutines, which aiortc runs from its DTLS transport's
receive task. Ours call them from the socket's datagram callback (media.transport.webrtc_transport)
or after a burst (media.ingest.burst_boundary). They only send, and sending never waits, so they
normally complete in place; should one ever wait on something, its remainder continues on the
event loop like a task: nothing is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from media import aiortc_compat

log = logging.getLogger(__name__)


class _Resume:
    """Continues a coroutine that suspended inside :func:`drive`, the way an asyncio Task would."""

    __slots__ = ("coro",)

    def __init__(self, coro: Coroutine[Any, Any, None], yielded: Any) -> None:
        self.coro = coro
        self._wait(yielded)

    def _wait(self, yielded: Any) -> None:
        if yielded is None:  # a bare yield (asyncio.sleep(0)): next loop iteration
            asyncio.get_running_loop().call_soon(self._step)
        else:
            aiortc_compat.release_future(yielded)
            yielded.add_done_callback(lambda _f: self._step())

    def _step(self) -> None:
        try:
            yielded = self.coro.send(None)
        except StopIteration:
            return
        except Exception:
            log.exception("an SRTP handler failed")
            return
        self._wait(yielded)


def drive(coro: Coroutine[Any, Any, None]) -> bool:
    """Run ``coro`` in place; True if it completed there, False if it suspended (it then goes on
    on the event loop)."""
    try:
        yielded = coro.send(None)
    except StopIteration:
        return True
    except Exception:
        log.exception("an SRTP handler failed")
        return True
    _Resume(coro, yielded)
    return False
