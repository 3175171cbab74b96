"""Connection pools per event loop, shared by a client and every client derived from it.

Pools belong to the event loop that made them (their sockets do). Each loop gets its pools
on first use and a finalizer that closes them when the loop ends, and takes them out of the
registry, so a program that never called ``aclose()`` leaves no socket open behind it and a
process running many short loops (``asyncio.run``/``trio.run`` per job) keeps none of them.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from asyncio import _get_running_loop
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, MutableMapping
from typing import Any

import sniffio

from .._exceptions import ClientClosedError
from ..crypto.identity import MerchantIdentity
from .bridge import SyncBridge
from .factory import PoolFactory
from .pool import Pool

__all__ = ["SECURE_POOLS", "Connections", "LoopPools", "forget_closed_loops", "loop_key"]

#: Mutual-TLS pools kept per event loop (one per merchant certificate), least recently used
#: closed beyond this: a multi-tenant service keeps its busy merchants' connections warm.
SECURE_POOLS = 32


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
        forget = pools.forget
        pools.forget = None
        if forget is not None:
            forget()
        if not pools.disarmed:
            await pools.aclose()


class LoopPools:
    """The pools of one event loop: plain (shared by every merchant), and one mutual-TLS
    pool per merchant certificate, made on first use."""

    __slots__ = ("_factory", "_retired", "_secure", "disarmed", "finalizer", "forget", "plain")

    def __init__(self, factory: PoolFactory) -> None:
        self._factory = factory
        self.plain = factory()
        self._secure: OrderedDict[MerchantIdentity | None, Pool] = OrderedDict()
        #: Secure pools pushed out of ``_secure`` that could not be closed at once (trio).
        self._retired: list[Pool] = []
        self.disarmed = False
        self.finalizer: AsyncGenerator[None, None] | None = None
        #: Takes this loop's entry out of the registry when the loop ends.
        self.forget: Callable[[], None] | None = None

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
        self.forget = None  # the caller took the entry out (and may hold the registry's lock)
        finalizer, self.finalizer = self.finalizer, None
        if finalizer is not None:
            closing: Any = finalizer.aclose()
            try:
                closing.send(None)
            except StopIteration:
                pass

    def secure(self, identity: MerchantIdentity | None) -> Pool:
        """The pool presenting ``identity``, the merchant certificate."""
        secure = self._secure
        pool = secure.get(identity)
        if pool is None:
            pool = secure[identity] = self._factory(identity, secure=True)
            if len(secure) > SECURE_POOLS:
                self._retire(secure.popitem(last=False)[1])
        else:
            secure.move_to_end(identity)
        return pool

    def _retire(self, pool: Pool) -> None:
        """Close a pool pushed out of the LRU: in the background on asyncio (a request still
        on it finishes or fails as on a closed client), at the loop's end on trio."""
        loop = _get_running_loop()
        if loop is None:
            self._retired.append(pool)
            return
        task = loop.create_task(pool.http.aclose())
        _CLOSING.add(task)
        task.add_done_callback(_CLOSING.discard)

    async def aclose(self) -> None:
        await self.plain.http.aclose()
        secure, self._secure = list(self._secure.values()), OrderedDict()
        retired, self._retired = self._retired, []
        for pool in secure + retired:
            await pool.http.aclose()


#: Background closes of retired pools (a task nobody references could be collected early).
_CLOSING: set[asyncio.Task[None]] = set()


class Connections:
    """Every loop's pools and the sync bridge of one client and the clients derived from it."""

    def __init__(self, httpx_options: dict[str, Any]) -> None:
        self.factory = PoolFactory(httpx_options)
        self._pools: dict[object, LoopPools] = {}
        self._last: tuple[object, LoopPools] | None = None
        self._lock = threading.Lock()
        self.bridge = SyncBridge()
        self.closed = False
        _CONNECTIONS.add(self)

    def _forget_after_fork(self) -> None:
        """In a forked child: a lock held by a parent thread stays held; the parent's loops
        do not run here (their pools stay unused; the child's loops get their own)."""
        self._lock = threading.Lock()
        self._last = None

    def current(self) -> LoopPools:
        """The running loop's pools, made on first use."""
        key = loop_key()
        last = self._last  # reset by ``close``: the closed check below is off the hot path
        if last is not None and last[0] is key:
            return last[1]
        if self.closed:
            raise ClientClosedError("the client was closed (close()/aclose()); make a new Client")
        with self._lock:
            pools = self._pools.get(key)
            if pools is None:
                for gone in forget_closed_loops(self._pools):
                    gone.disarm()
                pools = self._pools[key] = LoopPools(self.factory)
                pools.forget = _forgetter(self._pools, self._lock, key, pools)
                pools.close_at_loop_end()
            self._last = (key, pools)
        if self.closed:  # closed while we looked: do not leave the fast path open
            self._last = None
            raise ClientClosedError("the client was closed (close()/aclose()); make a new Client")
        return pools

    def loops(self) -> int:
        """How many event loops have pools here (for tests and diagnostics)."""
        return len(self._pools)

    async def aclose_current(self) -> None:
        """Close the running loop's pools."""
        key = loop_key()
        with self._lock:
            pools = self._pools.pop(key, None)
            if self._last is not None and self._last[0] is key:
                self._last = None
        if pools is not None:
            pools.forget = None
            await pools.finish()

    def mark_closed(self) -> None:
        """From now on every call raises ``ClientClosedError``."""
        self.closed = True
        with self._lock:
            self._last = None

    def close(self) -> None:
        """Stop the sync bridge (its calls in flight fail, its pools close); later calls raise."""
        self.mark_closed()
        self.bridge.stop()


_CONNECTIONS: weakref.WeakSet[Connections] = weakref.WeakSet()


def _forget_after_fork() -> None:
    for connections in list(_CONNECTIONS):
        connections._forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def _forgetter(
    registry: dict[object, LoopPools], lock: threading.Lock, key: object, pools: LoopPools
) -> Callable[[], None]:
    """Takes ``key`` out of ``registry`` if it still maps to ``pools`` (no reference to the
    ``Connections``, so a dropped client can be collected while its loops run)."""

    def forget() -> None:
        with lock:
            if registry.get(key) is pools:
                del registry[key]

    return forget
