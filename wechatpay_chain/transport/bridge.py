"""The sync bridge: one daemon thread running an asyncio loop, where ``*_sync`` calls run."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import sniffio

__all__ = ["SyncBridge"]

T = TypeVar("T")


def _submit(
    make: Callable[[], Coroutine[Any, Any, T]], loop: asyncio.AbstractEventLoop
) -> concurrent.futures.Future[T]:
    """Run ``make()`` on the bridge's loop in the caller's context, minus sniffio's marker:
    called from trio (or a trio worker thread) it would make the asyncio loop look like trio."""
    context = contextvars.copy_context()
    context.run(sniffio.current_async_library_cvar.set, None)
    return context.run(asyncio.run_coroutine_threadsafe, make(), loop)


class SyncBridge:
    """Started on the first ``*_sync`` call; ``stop`` ends the thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._loop is not None

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                thread = threading.Thread(target=run, name="wechatpay-chain-sync", daemon=True)
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
        return _submit(make, loop)

    def run(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``make()`` on the bridge's loop and wait for its result."""
        future = self.submit(make)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def stop(self, closing: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``closing()`` on the bridge's loop, then end the loop and its thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        if threading.current_thread() is not thread:
            _submit(closing, loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if threading.current_thread() is not thread:
            thread.join(timeout=10)
            loop.close()
