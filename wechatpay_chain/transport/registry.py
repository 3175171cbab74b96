"""Connection pools per event loop, shared by a client and every client derived from it.

Pools belong to the event loop that made them (their sockets do). Each loop gets its pools
on first use and a finalizer that closes them when the loop ends, so a program that never
called ``aclose()`` leaves no socket open behind it.
"""

from __future__ import annotations

import asyncio
import threading
from asyncio import _get_running_loop
from collections.abc import AsyncGenerator, MutableMapping
from typing import Any

import sniffio

from ..crypto.identity import MerchantIdentity
from .bridge import SyncBridge
from .factory import PoolFactory
from .pool import Pool

__all__ = ["Connections", "LoopPools", "forget_closed_loops", "loop_key"]


def loop_key() -> object:
    """What identifies the running event loop: the asyncio loop, or trio's token."""
    loop = _get_running_loop()  # asyncio: the cheap answer (trio runs no asyncio loop)
    if loop is not None:
        return loop
    library = sniffio.current_async_library()
    if library == "trio":
        import trio

        return trio.lowlevel.current_trio_token()
    return asyncio.get_running_loop()


def forget_closed_loops(by_loop: MutableMapping[object, Any]) -> list[Any]:
    """Drop (and return) the entries of asyncio loops that are closed."""
    closed = [
        k for k in list(by_loop) if isinstance(k, asyncio.AbstractEventLoop) and k.is_closed()
    ]
    return [value for value in (by_loop.pop(k, None) for k in closed) if value is not None]


async def _close_at_loop_end(pools: LoopPools) -> AsyncGenerator[None, None]:
    """Parked at its ``yield`` for as long as the event loop runs. The loop closes its
    unfinished async generators when it ends (``asyncio.run``, anyio's runners and
    ``trio.run`` do), and this one then closes the pools on that loop."""
    try:
        yield
    finally:
        if not pools.disarmed:
            await pools.aclose()


class LoopPools:
    """The pools of one event loop: plain (shared by every merchant), and one mutual-TLS
    pool per merchant certificate, made on first use."""

    __slots__ = ("_factory", "_secure", "disarmed", "finalizer", "plain")

    def __init__(self, factory: PoolFactory) -> None:
        self._factory = factory
        self.plain = factory()
        self._secure: dict[MerchantIdentity | None, Pool] = {}
        self.disarmed = False
        self.finalizer: AsyncGenerator[None, None] | None = None

    def close_at_loop_end(self) -> None:
        """Register with the running loop (from inside it) to be closed when it ends."""
        finalizer = _close_at_loop_end(self)
        try:
            step: Any = finalizer.__anext__()
            step.send(None)  # to its yield; the loop now knows it
        except StopIteration:
            self.finalizer = finalizer

    async def finish(self) -> None:
        """Close the pools now (and retire the loop-end finalizer)."""
        finalizer, self.finalizer = self.finalizer, None
        if finalizer is not None:
            await finalizer.aclose()  # runs its ``finally``: the pools close
        else:
            await self.aclose()

    def disarm(self) -> None:
        """The loop is gone: end the finalizer without awaiting anything."""
        self.disarmed = True
        finalizer, self.finalizer = self.finalizer, None
        if finalizer is not None:
            closing: Any = finalizer.aclose()
            try:
                closing.send(None)
            except StopIteration:
                pass

    def secure(self, identity: MerchantIdentity | None) -> Pool:
        """The pool presenting ``identity``, the merchant certificate."""
        pool = self._secure.get(identity)
        if pool is None:
            pool = self._secure[identity] = self._factory(identity, secure=True)
        return pool

    async def aclose(self) -> None:
        await self.plain.http.aclose()
        for pool in self._secure.values():
            await pool.http.aclose()


class Connections:
    """Every loop's pools and the sync bridge of one client and the clients derived from it."""

    def __init__(self, httpx_options: dict[str, Any]) -> None:
        self.factory = PoolFactory(httpx_options)
        self._pools: dict[object, LoopPools] = {}
        self._last: tuple[object, LoopPools] | None = None
        self._lock = threading.Lock()
        self.bridge = SyncBridge()

    def current(self) -> LoopPools:
        """The running loop's pools, made on first use."""
        key = loop_key()
        last = self._last
        if last is not None and last[0] is key:
            return last[1]
        pools = self._pools.get(key)
        if pools is None:
            with self._lock:
                pools = self._pools.get(key)
                if pools is None:
                    for gone in forget_closed_loops(self._pools):
                        gone.disarm()
                    pools = self._pools[key] = LoopPools(self.factory)
                    pools.close_at_loop_end()
        self._last = (key, pools)
        return pools

    async def aclose_current(self) -> None:
        """Close the running loop's pools."""
        key = loop_key()
        with self._lock:
            pools = self._pools.pop(key, None)
            if self._last is not None and self._last[0] is key:
                self._last = None
        if pools is not None:
            await pools.finish()

    def close(self) -> None:
        """Stop the sync bridge, closing its loop's pools first."""
        self.bridge.stop(self.aclose_current)
