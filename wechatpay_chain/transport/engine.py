"""The default HTTP/1.1 connection layer on asyncio: an ``httpx.AsyncBaseTransport``.

Why our own: httpcore's pool walks every connection (with a ``poll()`` each) several times
per request, which at 64 requests in flight costs more CPU than the RSA signature; the
maintained alternatives under httpx either miss the throughput goal or map a dropped
connection to an exception that says "never sent" (see bench/README.md). This module is
one ``asyncio.Protocol`` per connection, httptools (the C parser; h11 when it is missing)
and a pool that never scans:

- idle connections per origin on a LIFO stack, their age checked when taken; connections
  the peer closed leave the stack at once and are never reused;
- ``max_connections`` with a FIFO of waiters and ``PoolTimeout``;
- connect / read / write / pool timeouts and errors mapped as httpx's own transport maps
  httpcore's; a connection whose state is unknown (error, timeout, cancellation, a body
  not read to the end) is closed, never returned to the pool;
- a request is written once: nothing here ever sends it again;
- answer bodies are streamed with flow control (reading pauses while more than
  ``_HIGH_WATER`` bytes wait for the reader), framed by Content-Length, chunked encoding or
  the end of the connection; uploads are bytes or (async) iterables.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from .models import build_response, header_items

try:
    import httptools
except ImportError:  # pragma: no cover - the h11 parser below is tested explicitly
    httptools = None  # type: ignore[assignment]

__all__ = ["DEFAULT_LIMITS", "PARSER", "AsyncEngine"]

PARSER = "httptools" if httptools is not None else "h11"

_NEVER = float("inf")
#: A read deadline this close is treated as reached (the loop may wake a hair early).
_EARLY = 0.001
#: Body bytes held for a reader before the socket stops being read.
_HIGH_WATER = 256 * 1024
_LOW_WATER = 64 * 1024
_DISCONNECTED = "Server disconnected without sending a response."
_INCOMPLETE = "peer closed connection without sending complete message body"
_HTTP11 = {"http_version": b"HTTP/1.1"}
# WeChat Pay closes idle connections after about 8 s: expire ours first. Many requests in
# flight should not churn connections, so the keep-alive pool is as large as the pool (an
# idle connection is taken without looking at the others).
DEFAULT_LIMITS = httpx.Limits(
    max_connections=128, max_keepalive_connections=128, keepalive_expiry=5.0
)

Key = tuple[bytes, str, int, str]  # scheme, host, port, TLS server name


class _ParseError(Exception):
    pass


class _H11Parser:
    """httptools' response-parser callbacks, driven by h11 (the fallback parser)."""

    def __init__(self, protocol: _Connection) -> None:
        import h11

        self._h11 = h11
        self._protocol = protocol
        self._conn = h11.Connection(h11.CLIENT)
        self._status = 0
        self._keep = False

    def start(self, method: bytes) -> None:
        h11, conn = self._h11, self._conn
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        # h11 must see a request go out to frame the answer (HEAD has no body); the real
        # request is written by the connection.
        conn.send(h11.Request(method=method, target=b"/", headers=[(b"Host", b"h")]))
        conn.send(h11.EndOfMessage())

    def get_status_code(self) -> int:
        return self._status

    def should_keep_alive(self) -> bool:
        return self._keep

    def feed_data(self, data: bytes) -> None:
        h11, conn, protocol = self._h11, self._conn, self._protocol
        try:
            conn.receive_data(data)
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return
                if isinstance(event, h11.Response):
                    self._status = event.status_code
                    protocol.on_status(event.reason)
                    for name, value in event.headers.raw_items():
                        protocol.on_header(name, value)
                    protocol.on_headers_complete()
                elif isinstance(event, h11.Data):
                    protocol.on_body(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    self._keep = conn.our_state is h11.DONE and conn.their_state is h11.DONE
                    protocol.on_message_complete()
                    return
                elif isinstance(event, h11.ConnectionClosed):
                    return
                # InformationalResponse (1xx): skipped, as httpx does
        except h11.RemoteProtocolError as exc:
            raise _ParseError(str(exc)) from None


class _Exchange(httpx.AsyncByteStream):
    """One request/answer on a connection; the answer's body stream."""

    __slots__ = (
        "buffered",
        "chunks",
        "conn",
        "done",
        "encoded",
        "engine",
        "error",
        "framing",
        "head",
        "headers",
        "keep_alive",
        "loop",
        "read_timeout",
        "reason",
        "received",
        "sent",
        "status",
        "waiter",
    )

    def __init__(self, conn: _Connection, read_timeout: float | None, head: bool) -> None:
        self.conn: _Connection | None = conn
        self.loop = conn.loop
        self.engine = conn.engine
        self.read_timeout = read_timeout
        self.head = head  # a HEAD request: the answer has no body whatever it says
        self.status = 0
        self.reason = b""
        #: (name as sent, lower-cased name, value): the layout httpx.Headers keeps.
        self.headers: list[tuple[bytes, bytes, bytes]] = []
        self.framing = ""  # "length", "chunked", "close" or "none", once the head is in
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.received = False  # any byte of the answer arrived
        self.sent = False  # the whole request was handed to the socket
        self.done = False
        self.encoded = False  # the answer has a Content-Encoding (httpx decodes it)
        self.keep_alive = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def fail(self, error: BaseException) -> None:
        if self.error is None and not self.done:
            self.error = error
        self.wake()

    async def wait(self) -> None:
        """Until the connection reports something; ReadTimeout after ``read_timeout``."""
        loop = self.loop
        waiter = self.waiter = loop.create_future()
        timeout = self.read_timeout
        if timeout is None:
            try:
                await waiter
            finally:
                self.waiter = None
            return
        engine = self.engine
        engine._watch(self, loop.time() + timeout)
        try:
            await waiter
        finally:
            self.waiter = None
            engine._waiting.pop(self, None)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            while True:
                if self.chunks:
                    chunks = self.chunks
                    data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
                    chunks.clear()
                    self.buffered = 0
                    conn = self.conn
                    if conn is not None and conn.paused:
                        conn.resume()
                    yield data
                elif self.done:
                    return
                elif self.error is not None:
                    raise self.error
                else:
                    await self.wait()
        except BaseException:
            self.abandon()
            raise

    def complete_body(self) -> bytes | None:
        """The whole body, when it is already here and needs no decoding (then this
        stream is spent); else None. Spares httpx's reading machinery on small answers."""
        if not self.done or self.encoded or self.buffered > _HIGH_WATER:
            return None
        chunks = self.chunks
        data = b"".join(chunks) if len(chunks) != 1 else chunks[0]
        chunks.clear()
        self.buffered = 0
        return data

    def abandon(self) -> None:
        """The reader gave up before the end: the connection's state is unknown."""
        conn = self.conn
        self.conn = None
        if conn is not None and conn.exchange is self:
            conn.exchange = None
            conn.abort()

    async def aclose(self) -> None:
        if not self.done:
            self.abandon()
        self.chunks.clear()


def _expire(waiter: asyncio.Future[Any], error: type[Exception]) -> None:
    if not waiter.done():
        waiter.set_exception(error("timed out"))


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: feeds the parser, holds the current exchange."""

    def __init__(self, engine: AsyncEngine, key: Key) -> None:
        self.engine = engine
        self.key = key
        self.loop = engine.loop
        self.transport: asyncio.Transport | None = None
        self.parser: Any = (
            httptools.HttpResponseParser(self)
            if engine.parser == "httptools" and httptools is not None
            else _H11Parser(self)
        )
        self.h11 = isinstance(self.parser, _H11Parser)
        self.exchange: _Exchange | None = None
        self.reusable = True
        self.closed = False
        self.idle = False
        self.idle_since = 0.0
        self.paused = False
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        scheme, host, port, _ = self.key
        return f"<_Connection {scheme.decode()}://{host}:{port} closed={self.closed}>"

    # --- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.engine._opened(self)

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None or exchange.done:
            self.abort()  # bytes nobody asked for: this connection cannot be trusted
            return
        exchange.received = True
        try:
            self.parser.feed_data(data)
        except Exception as exc:  # httptools.HttpParserError, _ParseError
            self.exchange = None
            exchange.fail(httpx.RemoteProtocolError(f"malformed answer: {exc}"))
            self.abort()
            return
        if exchange.done:
            self._finished(exchange)

    def eof_received(self) -> bool:
        exchange = self.exchange
        if exchange is not None and not exchange.done:
            if self.h11 and exchange.received:
                try:
                    self.parser.feed_data(b"")
                except Exception as exc:
                    exchange.fail(httpx.RemoteProtocolError(f"{_INCOMPLETE}: {exc}"))
            elif exchange.framing == "close":
                exchange.keep_alive = False
                exchange.done = True
                exchange.wake()
            if exchange.done:
                self._finished(exchange)
        self.reusable = False
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        exchange = self.exchange
        self.exchange = None
        if exchange is not None and not exchange.done:
            if isinstance(exc, OSError):
                exchange.fail(httpx.ReadError(str(exc) or type(exc).__name__))
            elif exchange.received:
                exchange.fail(httpx.RemoteProtocolError(_INCOMPLETE))
            else:
                exchange.fail(httpx.RemoteProtocolError(_DISCONNECTED))
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)
        self.engine._lost(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    # --- parser callbacks (httptools' names; _H11Parser calls the same) -----------------
    def on_message_begin(self) -> None:
        pass

    def on_status(self, reason: bytes) -> None:
        exchange = self.exchange
        if exchange is not None:
            exchange.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        exchange = self.exchange
        if exchange is not None:
            exchange.headers.append((name, name.lower(), value))

    def on_headers_complete(self) -> None:
        exchange = self.exchange
        if exchange is None:
            return
        status = self.parser.get_status_code()
        if status < 200:
            if status == 101:
                raise _ParseError("101 Switching Protocols is not supported")
            exchange.headers = []  # 1xx: informational, the real answer follows
            exchange.reason = b""
            return
        exchange.status = status
        if exchange.head and not self.h11:
            # httptools would wait for the body a HEAD answer announces: the answer ends
            # here, and the connection (its parser now out of step) is not reused.
            exchange.framing = "none"
            exchange.done = True
            exchange.keep_alive = False
            self.reusable = False
        else:
            framing = "close"
            for _, lower, value in exchange.headers:
                if lower == b"transfer-encoding":
                    if b"chunked" in value.lower():
                        framing = "chunked"
                elif lower == b"content-length":
                    if framing == "close":
                        framing = "length"
                elif lower == b"content-encoding":
                    exchange.encoded = True
            # (h11 frames the body itself, EOF included)
            exchange.framing = "h11" if self.h11 else framing
        exchange.wake()

    def on_body(self, body: bytes) -> None:
        exchange = self.exchange
        if exchange is None or exchange.done:
            return
        exchange.chunks.append(body)
        exchange.buffered += len(body)
        if exchange.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        exchange.wake()

    def on_message_complete(self) -> None:
        exchange = self.exchange
        if exchange is None:
            return
        if exchange.status == 0:
            return  # the end of a 1xx answer
        if not exchange.done:
            exchange.done = True
            exchange.keep_alive = self.parser.should_keep_alive()
            exchange.wake()

    # --- used by the engine and the exchange --------------------------------------------
    def resume(self) -> None:
        self.paused = False
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def _finished(self, exchange: _Exchange) -> None:
        """The answer is complete: the connection goes back to the pool if it can."""
        if self.exchange is exchange:
            self.exchange = None
        exchange.conn = None
        if self.paused:
            self.resume()
        if exchange.keep_alive and exchange.sent and self.reusable and not self.closed:
            self.engine._release(self)
        else:
            self.close()

    async def drain(self, timeout: float | None) -> None:
        if not self._write_paused or self.closed:
            return
        loop = self.loop
        drain = self._drain = loop.create_future()
        handle = (
            None
            if timeout is None
            else loop.call_later(timeout, _expire, drain, httpx.WriteTimeout)
        )
        try:
            await drain
        finally:
            self._drain = None
            if handle is not None:
                handle.cancel()

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.close()

    def abort(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.abort()


_METHODS: set[str] = set()
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


def _method(method: str) -> bytes:
    if method not in _METHODS:
        if not method.isascii() or not _TOKEN.fullmatch(method):
            raise httpx.LocalProtocolError(f"invalid HTTP method {method[:40]!r}")
        _METHODS.add(method)
    return method.encode("ascii")


class AsyncEngine(httpx.AsyncBaseTransport):
    """HTTP/1.1 over asyncio with a keep-alive pool (see the module docstring).

    ``ssl_context``: the context for https (or a callable making it, called on the first
    https connection), as httpx would build it from ``verify=``. ``limits``: httpx.Limits
    (``max_connections``, ``max_keepalive_connections``, ``keepalive_expiry``).
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | Callable[[], ssl.SSLContext] | None = None,
        limits: httpx.Limits = DEFAULT_LIMITS,
        parser: str = PARSER,
    ) -> None:
        if parser not in ("httptools", "h11"):
            raise ValueError(f"parser must be 'httptools' or 'h11', got {parser!r}")
        self.parser = parser if httptools is not None else "h11"
        self._ssl = ssl_context
        self._max = limits.max_connections
        self._max_idle = limits.max_keepalive_connections
        self._expiry = limits.keepalive_expiry
        self._idle: dict[Key, deque[_Connection]] = {}
        self._idle_count = 0
        #: Connections open or being opened, and waiters' reserved slots.
        self._total = 0
        self._waiters: deque[tuple[Key, asyncio.Future[_Connection | None]]] = deque()
        self._connections: set[_Connection] = set()
        #: Exchanges waiting for the answer, with their read deadlines (loop time).
        self._waiting: dict[_Exchange, float] = {}
        self._checker: asyncio.TimerHandle | None = None
        self._check_at = _NEVER
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return (
            f"<AsyncEngine parser={self.parser} open={len(self._connections)} "
            f"idle={self._idle_count} max={self._max}>"
        )

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    @property
    def connections(self) -> int:
        """Connections open now (busy and idle)."""
        return len(self._connections)

    # --- the request --------------------------------------------------------------------
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("the transport is closed")
        url = request.url
        scheme = url.raw_scheme
        if scheme != b"http" and scheme != b"https":
            raise httpx.UnsupportedProtocol(
                f"request URL has an unsupported protocol {url.scheme!r}", request=request
            )
        host = url.raw_host.decode("ascii")
        port = url.port or (443 if scheme == b"https" else 80)
        timeouts = request.extensions.get("timeout") or {}
        sni = request.extensions.get("sni_hostname") or host
        key = (scheme, host, port, sni.decode("ascii") if isinstance(sni, bytes) else sni)

        # The head, checked: no header may smuggle a line break.
        raw = header_items(request.headers)
        lines = [_method(request.method), b" ", url.raw_path, b" HTTP/1.1\r\n"]
        framed = chunked = close = False
        for name, lower, value in raw:
            lines += (name, b": ", value, b"\r\n")
            if lower == b"content-length":
                framed = True
            elif lower == b"transfer-encoding":
                framed = True
                chunked = b"chunked" in value.lower()
            elif lower == b"connection":
                close = b"close" in value.lower()
        try:
            body: bytes | None = request.content
        except httpx.RequestNotRead:
            body = None
            if not framed:
                lines.append(b"Transfer-Encoding: chunked\r\n")
                chunked = True
        else:
            if body and not framed:
                lines.append(b"Content-Length: %d\r\n" % len(body))
        lines.append(b"\r\n")
        head = b"".join(lines)
        count = len(raw) + 2 + (len(lines) - 5 - 4 * len(raw))
        if head.count(b"\n") != count or head.count(b"\r") != count:
            raise httpx.LocalProtocolError("a request header contains a line break")

        conn = self._take_idle(key)  # the common case, without a coroutine
        if conn is None:
            conn = await self._acquire(key, timeouts)
        exchange = _Exchange(conn, timeouts.get("read"), request.method == "HEAD")
        conn.exchange = exchange
        if close:
            conn.reusable = False
        if conn.h11:
            conn.parser.start(request.method.encode("ascii"))
        try:
            transport = conn.transport
            assert transport is not None
            if body is not None:
                transport.write(head + body if body else head)
                exchange.sent = True
            else:
                await self._stream_body(conn, exchange, head, request.stream, chunked, timeouts)
            while not exchange.status:
                if exchange.error is not None:
                    raise exchange.error
                await exchange.wait()
        except BaseException:
            exchange.abandon()
            raise
        extensions: dict[str, Any] = dict(_HTTP11)
        if exchange.reason:
            extensions["reason_phrase"] = exchange.reason
        return build_response(exchange.status, exchange.headers, exchange, extensions)

    async def _stream_body(
        self,
        conn: _Connection,
        exchange: _Exchange,
        head: bytes,
        stream: Any,
        chunked: bool,
        timeouts: dict[str, Any],
    ) -> None:
        transport = conn.transport
        assert transport is not None
        timeout = timeouts.get("write")
        transport.write(head)
        if hasattr(stream, "__aiter__"):
            async for chunk in stream:
                if conn.closed or exchange.done or exchange.error is not None:
                    return  # answered (or dropped) early: the answer or error tells
                self._write_chunk(transport, chunk, chunked)
                await conn.drain(timeout)
        else:
            for chunk in stream:
                if conn.closed or exchange.done or exchange.error is not None:
                    return
                self._write_chunk(transport, chunk, chunked)
                await conn.drain(timeout)
        if chunked and not conn.closed:
            transport.write(b"0\r\n\r\n")
        exchange.sent = True

    @staticmethod
    def _write_chunk(transport: asyncio.Transport, chunk: bytes, chunked: bool) -> None:
        if not chunk:
            return
        if chunked:
            transport.write(b"%x\r\n" % len(chunk) + bytes(chunk) + b"\r\n")
        else:
            transport.write(chunk)

    # --- the pool -----------------------------------------------------------------------
    def _take_idle(self, key: Key) -> _Connection | None:
        """The most recently used idle connection to ``key`` that is still good, if any."""
        idle = self._idle.get(key)
        if idle:
            now = self.loop.time()
            expiry = self._expiry
            while idle:
                conn = idle.pop()
                self._idle_count -= 1
                conn.idle = False
                if conn.closed or not conn.reusable:
                    conn.abort()
                elif expiry is not None and now - conn.idle_since > expiry:
                    conn.close()
                else:
                    return conn
        return None

    async def _acquire(self, key: Key, timeouts: dict[str, Any]) -> _Connection:
        while True:
            conn = self._take_idle(key)
            if conn is not None:
                return conn
            if self._max is None or self._total < self._max:
                self._total += 1
                return await self._open(key, timeouts.get("connect"))
            got = await self._wait_for_slot(key, timeouts.get("pool"))
            if got is None:
                return await self._open(key, timeouts.get("connect"))
            if not got.closed and got.reusable:
                return got
            got.abort()  # died while handed over: try again (nothing was sent)

    async def _wait_for_slot(self, key: Key, timeout: float | None) -> _Connection | None:
        loop = self.loop
        waiter: asyncio.Future[_Connection | None] = loop.create_future()
        self._waiters.append((key, waiter))
        handle = (
            None
            if timeout is None
            else loop.call_later(timeout, _expire, waiter, httpx.PoolTimeout)
        )
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                got = waiter.result()  # handed over as we were cancelled: pass it on
                if got is None:
                    self._total -= 1
                    self._slot_freed()
                else:
                    self._release(got)
            raise
        finally:
            if handle is not None:
                handle.cancel()

    async def _open(self, key: Key, timeout: float | None) -> _Connection:
        """A new connection; its slot was reserved by the caller."""
        scheme, host, port, sni = key
        loop = self.loop
        made: list[_Connection] = []

        def factory() -> _Connection:
            conn = _Connection(self, key)
            made.append(conn)
            return conn

        context: ssl.SSLContext | None = None
        try:
            if scheme == b"https":
                context = self._ssl_context()
                connecting = loop.create_connection(
                    factory, host, port, ssl=context, server_hostname=sni
                )
            else:
                connecting = loop.create_connection(factory, host, port)
            if timeout is None:
                await connecting
            else:
                await asyncio.wait_for(connecting, timeout)
        except BaseException as exc:
            if made and made[0].transport is not None:
                made[0].abort()  # connected as the wait ended: its loss frees the slot
            else:
                self._total -= 1
                self._slot_freed()
            if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
                raise httpx.ConnectTimeout(f"timed out connecting to {host}:{port}") from None
            if isinstance(exc, OSError):
                raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
            raise
        conn = made[0]
        if context is not None and conn.transport is not None:
            ssl_object = conn.transport.get_extra_info("ssl_object")
            chosen = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
            if chosen not in (None, "http/1.1"):
                conn.abort()
                raise httpx.ConnectError(
                    f"{host}:{port} chose {chosen} by ALPN; this transport speaks HTTP/1.1"
                )
        return conn

    def _ssl_context(self) -> ssl.SSLContext:
        context = self._ssl
        if context is None:
            context = self._ssl = httpx.create_ssl_context()
        elif not isinstance(context, ssl.SSLContext):
            context = self._ssl = context()
        return context

    def _opened(self, conn: _Connection) -> None:
        self._connections.add(conn)
        if self._closed:
            conn.abort()

    def _release(self, conn: _Connection) -> None:
        """A connection whose answer is complete and which may be reused."""
        if self._closed or conn.closed or not conn.reusable:
            conn.close()
            return
        waiters = self._waiters
        while waiters:
            key, waiter = waiters[0]
            if waiter.done():
                waiters.popleft()
                continue
            if key == conn.key:
                waiters.popleft()
                waiter.set_result(conn)
                return
            conn.close()  # its slot goes to a request for another origin (on loss)
            return
        if self._max_idle is not None and self._idle_count >= self._max_idle:
            conn.close()
            return
        now = self.loop.time()
        conn.idle = True
        conn.idle_since = now
        idle = self._idle.get(conn.key)
        if idle is None:
            idle = self._idle[conn.key] = deque()
        idle.append(conn)
        self._idle_count += 1
        expiry = self._expiry
        if expiry is not None:
            while idle and now - idle[0].idle_since > expiry:  # the oldest, at the bottom
                old = idle.popleft()
                old.idle = False
                self._idle_count -= 1
                old.close()

    def _lost(self, conn: _Connection) -> None:
        if conn.idle:
            conn.idle = False
            idle = self._idle.get(conn.key)
            if idle is not None:
                try:
                    idle.remove(conn)
                    self._idle_count -= 1
                except ValueError:
                    pass
        if conn in self._connections:
            self._connections.discard(conn)
            self._total -= 1
            self._slot_freed()

    def _slot_freed(self) -> None:
        waiters = self._waiters
        while waiters:
            _, waiter = waiters.popleft()
            if not waiter.done():
                self._total += 1  # reserved for the waiter, which connects
                waiter.set_result(None)
                return

    # --- read timeouts: one timer for every waiting exchange ------------------------------
    def _watch(self, exchange: _Exchange, deadline: float) -> None:
        """ReadTimeout for ``exchange`` at ``deadline`` unless it is woken (or done) first.

        Waiting exchanges share one timer set for the earliest deadline, instead of a timer
        made and cancelled per wait: with many requests in flight the timer rarely moves.
        """
        self._waiting[exchange] = deadline
        if deadline < self._check_at:
            if self._checker is not None:
                self._checker.cancel()
            self._check_at = deadline
            self._checker = self.loop.call_at(deadline, self._expire_waiting)

    def _expire_waiting(self) -> None:
        self._checker = None
        self._check_at = _NEVER
        now = self.loop.time() + _EARLY
        earliest = _NEVER
        expired = []
        for exchange, deadline in self._waiting.items():
            if deadline <= now:
                expired.append(exchange)
            elif deadline < earliest:
                earliest = deadline
        for exchange in expired:
            del self._waiting[exchange]
            waiter = exchange.waiter
            if waiter is not None and not waiter.done():
                waiter.set_exception(httpx.ReadTimeout("timed out"))
        if earliest < _NEVER:
            self._check_at = earliest
            self._checker = self.loop.call_at(earliest, self._expire_waiting)

    async def aclose(self) -> None:
        self._closed = True
        if self._checker is not None:
            self._checker.cancel()
            self._checker = None
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(httpx.PoolTimeout("the transport was closed"))
        self._waiters.clear()
        self._idle.clear()
        self._idle_count = 0
        connections = list(self._connections)
        for conn in connections:
            conn.abort()
        if connections and self._loop is not None and not self._loop.is_closed():
            await asyncio.sleep(0)  # let the transports release their sockets
