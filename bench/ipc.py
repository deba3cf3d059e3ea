"""Request/reply between the bench orchestrator and its child processes over multiprocessing pipes.

Children are started with the ``spawn`` method (no inherited event loop or sockets) and ignore
SIGINT: the orchestrator decides when they stop, so Ctrl-C always goes through its cleanup.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import signal
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

_req = itertools.count(1)


class ChildError(RuntimeError):
    pass


class Child:
    """A spawned process running ``target(conn, *args)`` (which should call :func:`serve`)."""

    def __init__(self, name: str, target: Callable, *args: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.name = name
        self.conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(child_conn, *args), name=name, daemon=True)
        self.proc.start()
        child_conn.close()

    @property
    def pid(self) -> int:
        return self.proc.pid  # type: ignore[return-value]

    def send(self, op: str, **kw: Any) -> int:
        req = next(_req)
        self.conn.send({"op": op, "req": req, **kw})
        return req

    def wait(self, req: int, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.conn.poll(remaining):
                raise TimeoutError(f"{self.name}: no reply within {timeout:.0f} s")
            try:
                msg = self.conn.recv()
            except EOFError:
                raise ChildError(f"{self.name} exited (code {self.proc.exitcode})") from None
            if msg.get("req") == req:
                if "error" in msg:
                    raise ChildError(f"{self.name}: {msg['error']}\n{msg.get('trace', '')}")
                return msg

    def call(self, op: str, timeout: float = 30.0, **kw: Any) -> dict:
        return self.wait(self.send(op, **kw), timeout)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.is_alive():
            try:
                self.conn.send({"op": "exit", "req": 0})
            except (OSError, ValueError):
                pass
            self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(3)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(3)
        self.conn.close()


def call_all(children: list[Child], op: str, timeout: float, per_child: list[dict] | None = None) -> list[dict]:
    """Send ``op`` to every child at once, then wait for all replies (bounded by ``timeout``)."""
    reqs = [c.send(op, **(per_child[i] if per_child else {})) for i, c in enumerate(children)]
    deadline = time.monotonic() + timeout
    return [c.wait(r, max(0.1, deadline - time.monotonic())) for c, r in zip(children, reqs)]


def child_setup() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


async def serve(conn: Any, handle: Callable[[dict], Awaitable[dict]]) -> None:
    """Answer the orchestrator's requests one at a time until it says ``exit`` or goes away."""
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue = asyncio.Queue()

    def readable() -> None:
        try:
            while conn.poll():
                inbox.put_nowait(conn.recv())
        except (EOFError, OSError):
            loop.remove_reader(conn.fileno())
            inbox.put_nowait(None)

    loop.add_reader(conn.fileno(), readable)
    try:
        while True:
            msg = await inbox.get()
            if msg is None or msg.get("op") == "exit":
                return
            try:
                reply = await handle(msg)
            except Exception as exc:  # reported to the orchestrator, which raises it
                reply = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
            try:
                conn.send({"req": msg.get("req"), **reply})
            except (OSError, ValueError):
                return
    finally:
        try:
            loop.remove_reader(conn.fileno())
        except (OSError, ValueError):
            pass
