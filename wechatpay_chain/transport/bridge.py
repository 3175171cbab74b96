"""The sync bridge: one daemon thread running an asyncio loop, where ``*_sync`` calls run.

Lifecycle (README "Lifecycle"): started by the first ``*_sync`` call; ``stop`` (the client's
``close()``, or the garbage collector when the client was dropped unclosed) ends it for good.
Stopping cancels what still runs on the bridge's loop, waits a bounded time for it, closes the
loop's pools and fails every call still waiting with ``ClientClosedError``: no caller is left
blocked on a loop that no longer runs. Calls made afterwards raise ``ClientClosedError``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterable
from contextvars import ContextVar
from typing import Any, TypeVar

import sniffio

from .._exceptions import ClientClosedError

__all__ = ["BLOCKED_LOOP", "STOP_BOUND", "SyncBridge", "running_loop"]

T = TypeVar("T")

logger = logging.getLogger("wechatpay_chain")

#: Seconds ``stop`` gives the calls still running on the bridge to end once cancelled, and
#: the pools to close; a caller waits at most about three times this after ``close()``.
STOP_BOUND = 5.0

#: In a call running on the bridge: the event loop (or trio token) of the thread that waits
#: for it, blocked, if that thread was running one. A lock that loop holds cannot be released
#: until this call ends, so waiting for it would be a deadlock (see ``Refresher``).
BLOCKED_LOOP: ContextVar[object | None] = ContextVar("wechatpay_chain_blocked_loop", default=None)

_CLOSED = "the client was closed (close()/aclose()); make a new Client"
_CLOSED_IN_FLIGHT = (
    "the client was closed while this *_sync call was in flight; it may or may not have "
    "reached WeChat Pay (query before re-sending)"
)


def running_loop() -> object | None:
    """The calling thread's running asyncio loop or trio token, if it runs one."""
    loop = asyncio._get_running_loop()
    if loop is not None:
        return loop
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            token: object = trio.lowlevel.current_trio_token()
        except RuntimeError:  # a plain thread, or a trio worker thread
            return None
        return token
    return None


def _submit(
    make: Callable[[], Coroutine[Any, Any, T]], loop: asyncio.AbstractEventLoop
) -> concurrent.futures.Future[T]:
    """Run ``make()`` on the bridge's loop in the caller's context, minus sniffio's marker:
    called from trio (or a trio worker thread) it would make the asyncio loop look like trio."""
    context = contextvars.copy_context()
    context.run(sniffio.current_async_library_cvar.set, None)
    context.run(BLOCKED_LOOP.set, running_loop())
    coroutine = make()
    try:
        return context.run(asyncio.run_coroutine_threadsafe, coroutine, loop)
    except RuntimeError:  # the loop closed in between: the client was closed
        coroutine.close()
        raise ClientClosedError(_CLOSED) from None


def _fail(futures: Iterable[concurrent.futures.Future[Any]]) -> None:
    for future in futures:
        if not future.done():
            try:
                future.set_exception(ClientClosedError(_CLOSED_IN_FLIGHT))
            except concurrent.futures.InvalidStateError:  # it finished meanwhile
                pass


def _wind_down(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what still runs, give it ``STOP_BOUND`` to end, close the pools (the loop-end
    finalizers of ``registry.LoopPools`` run in ``shutdown_asyncgens``)."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.wait(tasks, timeout=STOP_BOUND))
    try:
        loop.run_until_complete(asyncio.wait_for(loop.shutdown_asyncgens(), STOP_BOUND))
    except Exception as exc:  # a pool that would not close: its sockets go with the loop
        logger.debug("sync bridge: pools did not close cleanly: %r", exc)


class SyncBridge:
    """Started on the first ``*_sync`` call; ``stop`` ends the thread, for good.

    Holds no reference to the client, so a dropped client can be collected while its
    bridge runs (its ``weakref.finalize`` then stops the bridge).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        #: Set by ``stop``; read without the lock (a flag read on the way in).
        self.closed = False
        self._swept = False
        #: Futures of calls not finished yet, failed by ``stop`` if the loop ends under them.
        self._pending: set[concurrent.futures.Future[Any]] = set()
        _BRIDGES.add(self)

    def _forget_after_fork(self) -> None:
        """In a forked child: the parent's thread is not here; the next call starts a new one."""
        self._lock = threading.Lock()
        self._loop = self._thread = None
        self._pending = set()
        self._swept = False

    @property
    def running(self) -> bool:
        return self._loop is not None

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def _serve(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
            _wind_down(loop)
        finally:
            loop.close()
            self._swept = True
            _fail(self._pending.copy())

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self.closed:
                raise ClientClosedError(_CLOSED)
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(
                    target=self._serve, args=(loop, ready), name="wechatpay-chain-sync", daemon=True
                )
                thread.start()
                ready.wait()
                self._thread = thread
                self._loop = loop
            return self._loop

    def submit(self, make: Callable[[], Coroutine[Any, Any, T]]) -> concurrent.futures.Future[T]:
        """Start ``make()`` on the bridge's loop; cancelling the future cancels it."""
        loop = self._loop or self._start()
        if threading.current_thread() is self._thread:
            raise RuntimeError(
                "a *_sync verb was called from the client's own I/O thread (inside a "
                "middleware?): await the async verb there instead"
            )
        future = _submit(make, loop)
        pending = self._pending
        pending.add(future)
        future.add_done_callback(pending.discard)
        if self._swept:  # stopped meanwhile, after the sweep: nobody else will fail it
            _fail((future,))
        return future

    def run(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``make()`` on the bridge's loop and wait for its result."""
        future = self.submit(make)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            if self.closed:  # cancelled by ``stop``
                raise ClientClosedError(_CLOSED_IN_FLIGHT) from None
            raise
        except BaseException:
            future.cancel()
            raise

    def stop(self) -> None:
        """End the loop and its thread (bounded), failing the calls still waiting on it."""
        with self._lock:
            self.closed = True
            loop, thread = self._loop, self._thread
            self._loop = None
        if loop is None or thread is None:
            return
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:  # already closed
            return
        if threading.current_thread() is not thread:
            thread.join(timeout=3 * STOP_BOUND)
            if thread.is_alive():
                # Stuck in blocking code on the loop: its waiters must not wait for it.
                self._swept = True
                _fail(self._pending.copy())


_BRIDGES: weakref.WeakSet[SyncBridge] = weakref.WeakSet()


def _forget_bridges_after_fork() -> None:
    for bridge in list(_BRIDGES):
        bridge._forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_bridges_after_fork)
