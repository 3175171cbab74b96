"""Connection pools per event loop, and the sync bridge's event-loop thread.

Shared by a client and every client derived from it (``without``, ``for_merchant``, ...).
"""

from __future__ import annotations

import asyncio
import contextvars
import platform
import threading
from collections.abc import Callable, Coroutine
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _installed_version
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import sniffio

from ._exceptions import InvalidArgumentError

if TYPE_CHECKING:
    from ._config import Config

__all__ = ["DEFAULT_LIMITS", "DEFAULT_TIMEOUT", "USER_AGENT", "loop_key"]

T = TypeVar("T")


# WeChat Pay closes idle connections after about 8 s: expire ours first. 64 requests in
# flight should not churn connections, so the keep-alive pool is as large as the pool.
DEFAULT_LIMITS = httpx.Limits(
    max_connections=128, max_keepalive_connections=128, keepalive_expiry=5.0
)
DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)

def _version(name: str) -> str:
    try:
        return _installed_version(name)
    except PackageNotFoundError:
        return "0"


# WeChat Pay requires a User-Agent on APIv3 requests; name ourselves and the stack below us.
USER_AGENT = (
    f"wechatpay-chain/{_version('wechatpay-chain')} httpx/{httpx.__version__} "
    f"({platform.system()}; Python/{platform.python_version()})"
)


def loop_key() -> object:
    library = sniffio.current_async_library()
    if library == "trio":
        import trio

        return trio.lowlevel.current_trio_token()
    return asyncio.get_running_loop()


class _LoopPools:
    """The httpx clients of one event loop: plain (shared by every merchant), and one mutual
    TLS pool per merchant certificate, made on first use."""

    __slots__ = ("_make", "_secure", "plain")

    def __init__(self, make: Callable[[Config | None], httpx.AsyncClient]) -> None:
        self._make = make
        self.plain = make(None)
        self._secure: dict[Config, httpx.AsyncClient] = {}

    def secure(self, config: Config) -> httpx.AsyncClient:
        """The pool presenting ``config``'s merchant certificate."""
        pool = self._secure.get(config)
        if pool is None:
            pool = self._secure[config] = self._make(config)
        return pool

    async def aclose(self) -> None:
        await self.plain.aclose()
        for pool in self._secure.values():
            await pool.aclose()


class _Portal:
    """A daemon thread running an asyncio loop, where the ``*_sync`` verbs run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

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

    def run(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        loop = self._loop or self._start()
        if threading.current_thread() is self._thread:
            raise RuntimeError(
                "a *_sync verb was called from the client's own I/O thread (inside a "
                "middleware?): await the async verb there instead"
            )
        # The caller's context goes along, minus sniffio's marker: called from trio (or a
        # trio worker thread) it would make the bridge's asyncio loop look like trio.
        context = contextvars.copy_context()
        context.run(sniffio.current_async_library_cvar.set, None)
        future = context.run(asyncio.run_coroutine_threadsafe, make(), loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def stop(self, closing: Callable[[], Coroutine[Any, Any, None]]) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        if threading.current_thread() is not thread:
            asyncio.run_coroutine_threadsafe(closing(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if threading.current_thread() is not thread:
            thread.join(timeout=10)
            loop.close()


class _Transport:
    """Connection pools per event loop and the sync portal, shared by derived clients."""

    def __init__(self, config: Config, httpx_options: dict[str, Any]) -> None:
        self._config = config
        self._options = httpx_options
        self._pools: dict[object, _LoopPools] = {}
        self._last: tuple[object, _LoopPools] | None = None
        self._ssl_contexts: dict[Config, Any] = {}
        self.portal = _Portal()

    def _make(self, secure: Config | None) -> httpx.AsyncClient:
        """A pool; with ``secure``, one presenting that merchant's certificate (mutual TLS)."""
        options = dict(self._options)
        options.setdefault("limits", DEFAULT_LIMITS)
        options.setdefault("timeout", DEFAULT_TIMEOUT)
        headers = httpx.Headers(options.get("headers"))
        headers.setdefault("User-Agent", USER_AGENT)
        options["headers"] = headers
        if secure is not None:
            from ._mtls import merchant_ssl_context

            if self._options.get("transport") is not None:
                raise InvalidArgumentError(
                    "security=True requests cannot use a custom transport=: the merchant "
                    "certificate is set on the connection pool the client builds"
                )
            context = self._ssl_contexts.get(secure)
            if context is None:
                context = merchant_ssl_context(
                    secure, options.get("verify", True), options.get("trust_env", True)
                )
                self._ssl_contexts[secure] = context
            options["verify"] = context
        return httpx.AsyncClient(**options)

    def current(self) -> _LoopPools:
        key = loop_key()
        last = self._last
        if last is not None and last[0] is key:
            return last[1]
        pools = self._pools.get(key)
        if pools is None:
            self._forget_closed_loops()
            pools = self._pools[key] = _LoopPools(self._make)
        self._last = (key, pools)
        return pools

    def _forget_closed_loops(self) -> None:
        for key in [k for k in self._pools if isinstance(k, asyncio.AbstractEventLoop)]:
            if key.is_closed():
                del self._pools[key]

    async def aclose_current(self) -> None:
        key = loop_key()
        pools = self._pools.pop(key, None)
        if self._last is not None and self._last[0] is key:
            self._last = None
        if pools is not None:
            await pools.aclose()

    def close(self) -> None:
        self.portal.stop(self.aclose_current)
