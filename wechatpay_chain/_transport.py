"""Connection pools per event loop, and the sync bridge's event-loop thread.

Shared by a client and every client derived from it (``without``, ``for_merchant``, ...).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import datetime
import logging
import os
import platform
import ssl
import threading
import time
from asyncio import _get_running_loop
from collections.abc import AsyncGenerator, Callable, Coroutine
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _installed_version
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.request import getproxies

import httpx
import sniffio

from ._decoding import ACCEPT_ENCODING, DEFAULT_MAX_ANSWER_SIZE, check_size, read_answer
from ._exceptions import InvalidArgumentError
from ._httpcore_guard import retire_tainted
from ._models import build_request

if TYPE_CHECKING:
    from ._config import Config
    from ._pipeline import Request

__all__ = ["DEFAULT_LIMITS", "DEFAULT_TIMEOUT", "HTTPCORE_LIMITS", "USER_AGENT", "loop_key"]

T = TypeVar("T")


# WeChat Pay closes idle connections after about 8 s: expire ours first. 64 requests in
# flight should not churn connections, so the keep-alive pool is as large as the pool (the
# engine, _engine.py, takes an idle connection without looking at the others).
DEFAULT_LIMITS = httpx.Limits(
    max_connections=128, max_keepalive_connections=128, keepalive_expiry=5.0
)
#: For httpx's own transport (trio, proxies, HTTP/2): httpcore walks every pooled
#: connection on each request, so a small keep-alive pool is faster; at 64 in flight 10
#: measured best (800 req/s; 20: 505, 40: 275; bench/README.md).
HTTPCORE_LIMITS = httpx.Limits(
    max_connections=128, max_keepalive_connections=10, keepalive_expiry=5.0
)
DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)

#: False: httpx's own transport everywhere (benchmarks and tests compare both).
USE_ENGINE = True
#: Options that put a transport of someone else's under the client (or a proxy in front).
_NOT_OURS = ("transport", "mounts", "proxy", "proxies", "app")
#: Client-level httpx features that only ``AsyncClient.send`` implements.
_FULL_PATH = ("auth", "params", "cookies", "event_hooks", "follow_redirects", "default_encoding")
_HTTPX_LOG = logging.getLogger("httpx")


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


_SHARED_CONTEXTS: dict[tuple[Any, ...], ssl.SSLContext] = {}
_SHARED_LOCK = threading.Lock()


def _shared_ssl_context(verify: bool, trust_env: bool) -> ssl.SSLContext:
    """httpx's default context for ``verify=True``/``False``, made once per process
    (loading the CA bundle costs ~20 ms of CPU)."""
    env = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")) if trust_env else ()
    key = (verify, trust_env, *env)
    context = _SHARED_CONTEXTS.get(key)
    if context is None:
        with _SHARED_LOCK:
            context = _SHARED_CONTEXTS.get(key)
            if context is None:
                context = httpx.create_ssl_context(verify=verify, trust_env=trust_env)
                _SHARED_CONTEXTS[key] = context
    return context


def _environment_proxies(trust_env: bool) -> bool:
    """Would httpx route requests through a proxy taken from the environment?"""
    if not trust_env:
        return False
    proxies = getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


_URLS: dict[str, tuple[httpx.URL, bytes]] = {}


def _url(text: str) -> tuple[httpx.URL, bytes]:
    """The parsed URL and its ``Host`` header value, parsed once per distinct URL."""
    known = _URLS.get(text)
    if known is None:
        if len(_URLS) >= 512:
            _URLS.clear()
        url = httpx.URL(text)
        known = _URLS[text] = (url, url.netloc)
    return known


class _Pool:
    """An httpx client and, when none of its options needs ``AsyncClient.send``, the
    transport under it: requests are then built and handed to the transport directly
    (the same request httpx would build, minus ~100 µs of its client machinery)."""

    __slots__ = ("_base", "_direct", "_timeout", "direct", "guard", "http", "limit")

    def __init__(
        self,
        http: httpx.AsyncClient,
        direct: httpx.AsyncBaseTransport | None,
        limit: int = DEFAULT_MAX_ANSWER_SIZE,
    ) -> None:
        self.http = http
        #: The most bytes an answer read into memory may decode to (_decoding.py).
        self.limit = limit
        #: httpx's own transport under it: connections checked after answers (_httpcore_guard).
        self.guard = isinstance(http._transport, httpx.AsyncHTTPTransport)
        self._direct = direct
        self.direct = direct is not None
        #: The client's default headers as (name, lower-cased name, value) bytes.
        self._base = [(n, n.lower(), v) for n, v in http.headers.raw]
        self._timeout = http.timeout.as_dict()

    async def send(self, request: Request) -> httpx.Response:
        """Send ``request`` (a bytes or empty body) as ``http.send`` would, and read it."""
        transport = self._direct
        assert transport is not None
        if self.http.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        given = request.headers
        items: list[tuple[bytes, bytes, bytes]]
        names: set[bytes] | tuple[()] = ()
        if given:
            # The request's headers replace the client's of the same name (as httpx merges);
            # str names and values are ASCII, as httpx requires.
            names = set()
            extra = []
            name: str | bytes
            value: str | bytes
            for name, value in given.items():
                raw = name.encode("ascii") if isinstance(name, str) else name
                lower = raw.lower()
                names.add(lower)
                data = value.encode("ascii") if isinstance(value, str) else value
                extra.append((raw, lower, data))
            items = [item for item in self._base if item[1] not in names]
            items += extra
        else:
            items = self._base.copy()
        timeout = request.timeout
        extensions: dict[str, Any] = {
            "timeout": self._timeout if timeout is None else httpx.Timeout(timeout).as_dict()
        }
        if request.extensions:
            extensions = {**request.extensions, **extensions}
        url, netloc = _url(request.url)
        content = request.content
        assert content is None or type(content) is bytes
        # What httpx.Request(content=...) adds, without its encoding machinery.
        if b"host" not in names:
            items.append((b"Host", b"host", netloc))
        if b"content-length" not in names and b"transfer-encoding" not in names:
            if content:
                items.append((b"Content-Length", b"content-length", b"%d" % len(content)))
            elif request.method in ("POST", "PUT", "PATCH"):
                items.append((b"Content-Length", b"content-length", b"0"))
        built = build_request(request.method, url, items, content or b"", extensions)
        start = time.perf_counter()
        try:
            response = await transport.handle_async_request(built)
        except httpx.RequestError as exc:
            exc.request = built
            raise
        response.request = built
        complete = getattr(response.stream, "complete_body", None)
        body = complete() if complete is not None else None
        if body is not None:  # the engine has the whole (identity-encoded) body already
            if len(body) > self.limit:
                check_size(body, self.limit)
            response._content = body
            response.is_stream_consumed = response.is_closed = True
        else:
            await read_answer(response, self.limit)  # decoded, bounded; closes it
        if self.guard:
            retire_tainted(transport)
        response.elapsed = datetime.timedelta(seconds=time.perf_counter() - start)
        if _HTTPX_LOG.isEnabledFor(logging.INFO):
            _HTTPX_LOG.info(
                'HTTP Request: %s %s "%s %d %s"',
                built.method,
                built.url,
                response.http_version,
                response.status_code,
                response.reason_phrase,
            )
        return response


def loop_key() -> object:
    loop = _get_running_loop()  # asyncio: the cheap answer (trio runs no asyncio loop)
    if loop is not None:
        return loop
    library = sniffio.current_async_library()
    if library == "trio":
        import trio

        return trio.lowlevel.current_trio_token()
    return asyncio.get_running_loop()


async def _close_at_loop_end(pools: _LoopPools) -> AsyncGenerator[None, None]:
    """Parked at its ``yield`` for as long as the event loop runs. The loop closes its
    unfinished async generators when it ends (``asyncio.run``, anyio's runners and
    ``trio.run`` do), and this one then closes the pools on that loop: a program that
    never called ``aclose()`` leaves no socket open behind it."""
    try:
        yield
    finally:
        if not pools.disarmed:
            await pools.aclose()


class _LoopPools:
    """The httpx clients of one event loop: plain (shared by every merchant), and one mutual
    TLS pool per merchant certificate, made on first use."""

    __slots__ = ("_make", "_secure", "disarmed", "finalizer", "plain")

    def __init__(self, make: Callable[[Config | None], _Pool]) -> None:
        self._make = make
        self.plain = make(None)
        self._secure: dict[Config, _Pool] = {}
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

    def secure(self, config: Config) -> _Pool:
        """The pool presenting ``config``'s merchant certificate."""
        pool = self._secure.get(config)
        if pool is None:
            pool = self._secure[config] = self._make(config)
        return pool

    async def aclose(self) -> None:
        await self.plain.http.aclose()
        for pool in self._secure.values():
            await pool.http.aclose()


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
        future = _submit(make, loop)
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
            _submit(closing, loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if threading.current_thread() is not thread:
            thread.join(timeout=10)
            loop.close()


def _submit(
    make: Callable[[], Coroutine[Any, Any, T]], loop: asyncio.AbstractEventLoop
) -> concurrent.futures.Future[T]:
    """Run ``make()`` on the bridge's loop in the caller's context, minus sniffio's marker:
    called from trio (or a trio worker thread) it would make the asyncio loop look like trio."""
    context = contextvars.copy_context()
    context.run(sniffio.current_async_library_cvar.set, None)
    return context.run(asyncio.run_coroutine_threadsafe, make(), loop)


class _Transport:
    """Connection pools per event loop and the sync portal, shared by derived clients."""

    def __init__(self, config: Config, httpx_options: dict[str, Any]) -> None:
        self._config = config
        self._options = httpx_options
        self._pools: dict[object, _LoopPools] = {}
        self._last: tuple[object, _LoopPools] | None = None
        self._ssl_contexts: dict[Config, Any] = {}
        self._ssl_context: ssl.SSLContext | None = None
        self.portal = _Portal()

    def _plain_ssl_context(self) -> ssl.SSLContext:
        """The context for https without a merchant certificate: made once per client (not
        per event loop), and shared between clients when ``verify`` is True or False."""
        context = self._ssl_context
        if context is None:
            verify = self._options.get("verify", True)
            trust_env = bool(self._options.get("trust_env", True))
            if isinstance(verify, ssl.SSLContext):
                context = verify
            elif isinstance(verify, bool) and not self._options.get("http2"):
                # (httpcore sets ALPN on the context it is given: HTTP/2 gets its own)
                context = _shared_ssl_context(verify, trust_env)
            else:
                context = httpx.create_ssl_context(verify=verify, trust_env=trust_env)
            self._ssl_context = context
        return context

    def _make(self, secure: Config | None) -> _Pool:
        """A pool; with ``secure``, one presenting that merchant's certificate (mutual TLS).

        On asyncio, unless the client was given a transport, mounts, a proxy (or the
        environment names one) or HTTP/2, its transport is the engine (_engine.py);
        elsewhere httpx's own. Unless auth, cookies, params, event hooks or redirects are
        configured, requests go to that transport directly (_Pool.send).
        """
        options = dict(self._options)
        options.setdefault("timeout", DEFAULT_TIMEOUT)
        headers = httpx.Headers(options.get("headers"))
        headers.setdefault("User-Agent", USER_AGENT)
        # Only what _decoding decodes, whatever optional packages are installed.
        headers.setdefault("Accept-Encoding", ACCEPT_ENCODING)
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
        else:
            context = None
        ours = not any(options.get(name) for name in _NOT_OURS) and not _environment_proxies(
            bool(options.get("trust_env", True))
        )
        if not ours:
            options.setdefault("limits", HTTPCORE_LIMITS)
            if context is not None:
                options["verify"] = context
            elif options.get("transport") is None:
                options["verify"] = self._plain_ssl_context()
            return _Pool(httpx.AsyncClient(**options), None, self._config.max_answer_size)
        http1 = bool(options.pop("http1", True))
        http2 = bool(options.pop("http2", False))
        limits = options.pop("limits", None)
        options.pop("verify", None)
        transport: httpx.AsyncBaseTransport
        if USE_ENGINE and http1 and not http2 and sniffio.current_async_library() == "asyncio":
            from ._engine import AsyncEngine

            transport = AsyncEngine(
                ssl_context=context if context is not None else self._plain_ssl_context,
                limits=limits or DEFAULT_LIMITS,
            )
        else:
            transport = httpx.AsyncHTTPTransport(
                verify=context if context is not None else self._plain_ssl_context(),
                http1=http1,
                http2=http2,
                limits=limits or HTTPCORE_LIMITS,
            )
        options["transport"] = transport
        direct = None if any(options.get(name) for name in _FULL_PATH) else transport
        return _Pool(httpx.AsyncClient(**options), direct, self._config.max_answer_size)

    def current(self) -> _LoopPools:
        key = loop_key()
        last = self._last
        if last is not None and last[0] is key:
            return last[1]
        pools = self._pools.get(key)
        if pools is None:
            self._forget_closed_loops()
            pools = self._pools[key] = _LoopPools(self._make)
            pools.close_at_loop_end()
        self._last = (key, pools)
        return pools

    def _forget_closed_loops(self) -> None:
        for key in [k for k in self._pools if isinstance(k, asyncio.AbstractEventLoop)]:
            if key.is_closed():
                self._pools.pop(key).disarm()

    async def aclose_current(self) -> None:
        key = loop_key()
        pools = self._pools.pop(key, None)
        if self._last is not None and self._last[0] is key:
            self._last = None
        if pools is not None:
            await pools.finish()

    def close(self) -> None:
        self.portal.stop(self.aclose_current)
