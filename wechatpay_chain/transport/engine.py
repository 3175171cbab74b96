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
- a request is written once: nothing here ever sends it again; a request whose
  ``Content-Length`` disagrees with its body is refused before a byte goes out;
- the answer is read as h11 reads it: one state machine per exchange (head, body, done),
  so nothing is written into a finished answer, bytes after it make the connection
  unusable, trailers are dropped, the head is bounded (bytes and header count), and a
  transfer coding other than ``chunked`` is refused;
- an idle connection is polled (one ``poll()`` on its own socket) when it is taken: one
  the peer closed or wrote to while the loop was busy is never reused;
- connecting tries the next address of a host (happy eyeballs) when one fails or stalls;
- the read timeout starts once the request is out, not while a large body is written;
- answer bodies are streamed with flow control (reading pauses while more than
  ``_HIGH_WATER`` bytes wait for the reader), framed by Content-Length, chunked encoding or
  the end of the connection; uploads are bytes or (async) iterables.
"""

from __future__ import annotations

import asyncio
import re
import select
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
_BLANK = (b"\r", b"\n")
_VERSIONS = {"1.1": b"HTTP/1.1", "1.0": b"HTTP/1.0"}
#: Bounds on an answer's head (status line and headers; trailers count too), as h11 bounds
#: its incomplete events: a WeChat Pay head is well under 2 KiB and 20 headers.
MAX_HEAD = 64 * 1024
MAX_HEADERS = 128
#: A ``bytes`` body larger than this is written in slices, each waiting for the socket, so
#: the write timeout measures progress and the read timeout starts once it is all out.
_SLICE = 256 * 1024
#: Seconds before connecting to a host's next address while the previous one is silent.
HAPPY_EYEBALLS_DELAY = 0.25
_POLL = getattr(select, "poll", None)
# WeChat Pay closes idle connections after about 8 s: expire ours first. Many requests in
# flight should not churn connections, so the keep-alive pool is as large as the pool (an
# idle connection is taken without looking at the others).
DEFAULT_LIMITS = httpx.Limits(
    max_connections=128, max_keepalive_connections=128, keepalive_expiry=5.0
)

Key = tuple[bytes, str, int, str]  # scheme, host, port, TLS server name


class _ParseError(Exception):
    pass


_AFTER_END = "bytes after a complete answer"


class _H11Parser:
    """httptools' response-parser callbacks, driven by h11 (the fallback parser).

    h11 frames the answer; the connection's callbacks apply the same checks to both
    parsers (head bounds, transfer codings, what may follow a complete answer).
    """

    def __init__(self, protocol: _Connection, max_head: int) -> None:
        import h11

        self._h11 = h11
        self._protocol = protocol
        self._max_head = max_head
        self._conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_head)
        self._status = 0
        self._version = "1.1"
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

    def get_http_version(self) -> str:
        return self._version

    def should_keep_alive(self) -> bool:
        return self._keep

    def feed_data(self, data: bytes) -> None:
        h11, conn, protocol = self._h11, self._conn, self._protocol
        try:
            conn.receive_data(data)
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    return
                if event is h11.PAUSED:
                    # h11 holds bytes past the end of the answer it delivered
                    raise _ParseError(_AFTER_END)
                if isinstance(event, h11.Response | h11.InformationalResponse):
                    # (1xx too: the connection checks and skips them)
                    self._status = event.status_code
                    self._version = event.http_version.decode("ascii")
                    protocol.on_message_begin()
                    protocol.on_status(event.reason)
                    for name, value in event.headers.raw_items():
                        protocol.on_header(name, value)
                    protocol.on_headers_complete()
                elif isinstance(event, h11.Data):
                    protocol.on_body(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    # (its trailers, event.headers, are dropped: they never become headers)
                    self._keep = conn.our_state is h11.DONE and conn.their_state is h11.DONE
                    protocol.on_message_complete()
                    if conn.trailing_data[0]:
                        raise _ParseError(_AFTER_END)
                    return
                elif isinstance(event, h11.ConnectionClosed):
                    return
        except h11.RemoteProtocolError as exc:
            if str(exc) == "Receive buffer too long":  # h11's bound on an incomplete event
                raise _ParseError(f"the answer's head exceeds {self._max_head} bytes") from None
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
        "head_count",
        "head_size",
        "headers",
        "keep_alive",
        "loop",
        "read_timeout",
        "reason",
        "received",
        "sent",
        "status",
        "tail",
        "version",
        "waiter",
    )

    def __init__(self, conn: _Connection, read_timeout: float | None, head: bool) -> None:
        self.conn: _Connection | None = conn
        self.loop = conn.loop
        self.engine = conn.engine
        self.read_timeout = read_timeout
        self.head = head  # a HEAD request: the answer has no body whatever it says
        #: 0 while the head is read; set when the final head is complete (then the body).
        self.status = 0
        self.version = b"HTTP/1.1"
        self.reason = b""
        #: Head bytes received (while incomplete), and header lines (trailers too) seen.
        self.head_size = 0
        self.head_count = 0
        self.tail = b""  # the last bytes read before the current read (see _overran)
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


def _reason(exc: BaseException) -> str:
    """What the parser objected to (httptools wraps our callbacks' errors)."""
    inner = exc.__context__
    if isinstance(inner, _ParseError):
        return str(inner)
    return str(exc) or type(exc).__name__


def _overran(data: bytes, exchange: _Exchange) -> bool:
    """Whether ``data``, whose bytes completed the answer, holds more than the answer.

    httptools says nothing of bytes after a complete answer when they are only CR and LF
    (llhttp skips blank lines before a status line); anything else reaches a callback,
    which refuses it. An answer ends with its last body byte (Content-Length), else with
    the blank line closing its head or trailers, which no fifth line break precedes.
    """
    if exchange.framing == "length" and exchange.chunks:
        return not data.endswith(exchange.chunks[-1])
    tail = data[-5:] if len(data) >= 5 else (exchange.tail + data)[-5:]
    return len(tail) == 5 and not tail.strip(b"\r\n")


def _framing(exchange: _Exchange, max_head: int) -> str:
    """How the answer's body is delimited, refusing what neither side can frame safely:
    a transfer coding other than ``chunked`` (its bytes would reach the reader still
    coded), ``Transfer-Encoding`` with ``Content-Length`` (how a proxy and we could
    disagree on where the answer ends), and conflicting or malformed lengths; and a head
    larger than ``max_head`` that came whole in one read."""
    framing = "close"
    length: bytes | None = None
    size = len(exchange.reason) + 15
    for name, lower, value in exchange.headers:
        size += len(name) + len(value) + 4
        if lower == b"transfer-encoding":
            if framing == "chunked" or value.strip(b" \t").lower() != b"chunked":
                raise _ParseError("unsupported Transfer-Encoding (only chunked is decoded)")
            framing = "chunked"
        elif lower == b"content-length":
            for part in value.split(b","):
                part = part.strip(b" \t")
                if not part.isdigit() or (length is not None and part != length):
                    raise _ParseError("malformed or conflicting Content-Length")
                length = part
        elif lower == b"content-encoding":
            exchange.encoded = True
    if size > max_head:
        raise _ParseError(f"the answer's head exceeds {max_head} bytes")
    if length is not None:
        if framing == "chunked":
            raise _ParseError("both Transfer-Encoding and Content-Length")
        framing = "length"
    return framing


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: feeds the parser, holds the current exchange."""

    def __init__(self, engine: AsyncEngine, key: Key) -> None:
        self.engine = engine
        self.key = key
        self.loop = engine.loop
        self.max_head = engine.max_head
        self.max_headers = engine.max_headers
        self.transport: asyncio.Transport | None = None
        self.parser: Any = (
            httptools.HttpResponseParser(self)
            if engine.parser == "httptools" and httptools is not None
            else _H11Parser(self, engine.max_head)
        )
        self.h11 = isinstance(self.parser, _H11Parser)
        self.exchange: _Exchange | None = None
        self.reusable = True
        self.closed = False
        self.idle = False
        self.idle_since = 0.0
        self.paused = False
        self._poll: Any = None
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        scheme, host, port, _ = self.key
        return f"<_Connection {scheme.decode()}://{host}:{port} closed={self.closed}>"

    # --- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and _POLL is not None:
            # Registered once: checking an idle connection is then one poll() call.
            self._poll = _POLL()
            self._poll.register(sock.fileno(), select.POLLIN | select.POLLPRI)
        self.engine._opened(self)

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None or exchange.done:
            self.abort()  # bytes nobody asked for: this connection cannot be trusted
            return
        exchange.received = True
        if not exchange.status:
            if not exchange.head_size and data[:1] in _BLANK:
                # llhttp skips line breaks before a status line; h11 (rightly) does not
                self.exchange = None
                exchange.fail(httpx.RemoteProtocolError("malformed answer: no status line"))
                self.abort()
                return
            exchange.head_size += len(data)
        try:
            self.parser.feed_data(data)
            if not exchange.status and exchange.head_size > self.max_head:
                raise _ParseError(f"the answer's head exceeds {self.max_head} bytes")
        except Exception as exc:  # httptools.HttpParserError, _ParseError
            if exchange.done:
                # The answer was complete when more bytes came: it stands, frozen, and
                # the connection (whose next bytes nobody can frame) is never reused.
                self.reusable = False
                self._finished(exchange)
                self.abort()
                return
            self.exchange = None
            exchange.fail(httpx.RemoteProtocolError(f"malformed answer: {_reason(exc)}"))
            self.abort()
            return
        if exchange.done:
            if not self.h11 and _overran(data, exchange):
                self.reusable = False  # line breaks after the answer, which llhttp skips
            self._finished(exchange)
        else:
            exchange.tail = data[-4:] if len(data) >= 4 else (exchange.tail + data)[-4:]

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
    # The exchange is a state machine, as h11's: the head (status == 0), then the body
    # (status set), then done. A callback out of turn raises, and the parser's caller
    # (data_received) turns that into a protocol error, or, after a complete answer, into
    # a connection that is closed without touching that answer.
    def _current(self) -> _Exchange:
        exchange = self.exchange
        if exchange is None or exchange.done:
            raise _ParseError(_AFTER_END)
        return exchange

    def on_message_begin(self) -> None:
        exchange = self._current()
        if exchange.status:
            raise _ParseError(_AFTER_END)

    def on_status(self, reason: bytes) -> None:
        exchange = self._current()
        if exchange.status:
            raise _ParseError(_AFTER_END)
        exchange.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        exchange = self._current()
        exchange.head_count += 1
        if exchange.head_count > self.max_headers:
            raise _ParseError(f"the answer has more than {self.max_headers} header lines")
        if exchange.status:
            # a chunked answer's trailer: bounded, then dropped (it is no header)
            exchange.head_size += len(name) + len(value) + 4
            if exchange.head_size > self.max_head:
                raise _ParseError(f"the answer's trailers exceed {self.max_head} bytes")
            return
        exchange.headers.append((name, name.lower(), value.rstrip(b" \t")))

    def on_headers_complete(self) -> None:
        exchange = self._current()
        if exchange.status:
            raise _ParseError(_AFTER_END)
        parser = self.parser
        status = parser.get_status_code()
        if not _REASON.fullmatch(exchange.reason):
            raise _ParseError("control characters in the status line")
        if status < 200:
            if status == 101:
                raise _ParseError("101 Switching Protocols is not supported")
            for _, lower, _ in exchange.headers:
                if lower == b"content-length" or lower == b"transfer-encoding":
                    # h11 would skip it and httptools read a body: no safe reading
                    raise _ParseError("a 1xx answer with a body framing header")
            exchange.headers = []  # 1xx: informational, the real answer follows
            exchange.reason = b""
            exchange.head_count = 0
            return
        version = _VERSIONS.get(parser.get_http_version())
        if version is None:
            raise _ParseError(f"HTTP/{parser.get_http_version()} is not HTTP/1.x")
        framing = _framing(exchange, self.max_head)
        exchange.version = version
        exchange.status = status
        exchange.head_size = 0  # from here on, it counts trailer bytes
        exchange.head_count = 0
        if exchange.head and not self.h11:
            # httptools would wait for the body a HEAD answer announces: the answer ends
            # here, and the connection (its parser now out of step) is not reused.
            exchange.framing = "none"
            exchange.done = True
            exchange.keep_alive = False
            self.reusable = False
        else:
            # (h11 frames the body itself, EOF included)
            exchange.framing = "h11" if self.h11 else framing
        exchange.wake()

    def on_body(self, body: bytes) -> None:
        exchange = self._current()
        if not exchange.status:
            raise _ParseError("body bytes before the head is complete")
        exchange.chunks.append(body)
        exchange.buffered += len(body)
        if exchange.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        exchange.wake()

    def on_message_complete(self) -> None:
        exchange = self._current()
        if exchange.status == 0:
            return  # the end of a 1xx answer
        exchange.done = True
        exchange.keep_alive = self.parser.should_keep_alive()
        exchange.wake()

    def readable(self) -> bool:
        """Whether the socket has something to read (bytes, or the peer's FIN) right now:
        for an idle connection, a reason never to reuse it."""
        poll = self._poll
        return poll is not None and bool(poll.poll(0))

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
#: What h11 accepts as a reason phrase (no NUL, no line breaks).
_REASON = re.compile(rb"(?:[ \t]|[^\x00\s])*")
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


async def _aiter(items: Any) -> AsyncIterator[bytes]:
    for item in items:
        yield item


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
    ``max_head`` / ``max_headers``: bounds on an answer's head (bytes, header lines); a
    larger one is an ``httpx.RemoteProtocolError``.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | Callable[[], ssl.SSLContext] | None = None,
        limits: httpx.Limits = DEFAULT_LIMITS,
        parser: str = PARSER,
        max_head: int = MAX_HEAD,
        max_headers: int = MAX_HEADERS,
    ) -> None:
        if parser not in ("httptools", "h11"):
            raise ValueError(f"parser must be 'httptools' or 'h11', got {parser!r}")
        self.parser = parser if httptools is not None else "h11"
        self.max_head = max_head
        self.max_headers = max_headers
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

        # The head, checked: no header may smuggle a line break, and the framing the
        # headers declare must be the body's (else its excess reaches the server as
        # another request).
        raw = header_items(request.headers)
        lines = [_method(request.method), b" ", url.raw_path, b" HTTP/1.1\r\n"]
        length: bytes | None = None
        chunked = close = False
        for name, lower, value in raw:
            lines += (name, b": ", value, b"\r\n")
            if lower == b"content-length":
                if length is not None and value != length:
                    raise httpx.LocalProtocolError("conflicting Content-Length headers")
                length = value
            elif lower == b"transfer-encoding":
                if chunked or value.strip().lower() != b"chunked":
                    raise httpx.LocalProtocolError(
                        "Transfer-Encoding other than one 'chunked' is not supported"
                    )
                chunked = True
            elif lower == b"connection":
                close = b"close" in value.lower()
        declared: int | None = None
        if length is not None:
            if chunked:
                raise httpx.LocalProtocolError("both Content-Length and Transfer-Encoding")
            if not length.strip().isdigit():
                raise httpx.LocalProtocolError("Content-Length is not a number")
            declared = int(length)
        body: bytes | None
        try:
            content = request.content
        except httpx.RequestNotRead:
            body = None
            if declared is None and not chunked:
                lines.append(b"Transfer-Encoding: chunked\r\n")
                chunked = True
        else:
            body = content
            if declared is not None:
                if declared != len(content):
                    raise httpx.LocalProtocolError(
                        f"Content-Length {declared} disagrees with the body's "
                        f"{len(content)} bytes: nothing was sent"
                    )
            elif chunked:
                body = b"%x\r\n%b\r\n" % (len(content), content) if content else b""
                body += b"0\r\n\r\n"
            elif content:
                lines.append(b"Content-Length: %d\r\n" % len(content))
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
            if body is None:
                await self._stream_body(
                    conn, exchange, head, request.stream, chunked, declared, timeouts
                )
            elif len(body) <= _SLICE:
                transport.write(head + body if body else head)
                if conn._write_paused:
                    await conn.drain(timeouts.get("write"))
                exchange.sent = True
            else:
                await self._write_body(conn, exchange, head, body, timeouts)
            # Only now, with the request out, does the read timeout start.
            while not exchange.status:
                if exchange.error is not None:
                    raise exchange.error
                await exchange.wait()
        except BaseException:
            exchange.abandon()
            raise
        extensions: dict[str, Any] = {"http_version": exchange.version}
        if exchange.reason:
            extensions["reason_phrase"] = exchange.reason
        return build_response(exchange.status, exchange.headers, exchange, extensions)

    async def _write_body(
        self,
        conn: _Connection,
        exchange: _Exchange,
        head: bytes,
        body: bytes,
        timeouts: dict[str, Any],
    ) -> None:
        """A large ``bytes`` body, a slice at a time: the write timeout applies to each
        slice (progress), and the caller waits for the answer once the last is out."""
        transport = conn.transport
        assert transport is not None
        timeout = timeouts.get("write")
        view = memoryview(body)
        transport.write(head)
        for start in range(0, len(body), _SLICE):
            if conn.closed or exchange.done or exchange.error is not None:
                return  # answered (or dropped) early: the answer or error tells
            transport.write(view[start : start + _SLICE])
            await conn.drain(timeout)
        exchange.sent = True

    async def _stream_body(
        self,
        conn: _Connection,
        exchange: _Exchange,
        head: bytes,
        stream: Any,
        chunked: bool,
        declared: int | None,
        timeouts: dict[str, Any],
    ) -> None:
        transport = conn.transport
        assert transport is not None
        timeout = timeouts.get("write")
        transport.write(head)
        left = _NEVER if declared is None else declared
        chunks = stream if hasattr(stream, "__aiter__") else _aiter(stream)
        async for chunk in chunks:
            if conn.closed or exchange.done or exchange.error is not None:
                return  # answered (or dropped) early: the answer or error tells
            left -= len(chunk)
            if left < 0:
                raise httpx.LocalProtocolError(
                    f"the body is longer than its Content-Length {declared}"
                )
            self._write_chunk(transport, chunk, chunked)
            await conn.drain(timeout)
        if left and left != _NEVER:
            raise httpx.LocalProtocolError(
                f"the body is shorter than its Content-Length {declared}"
            )
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
                if conn.closed or not conn.reusable or conn.readable():
                    conn.abort()  # closed, or written to, while the loop was busy
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
            if not got.closed and got.reusable and not got.readable():
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
                    factory,
                    host,
                    port,
                    ssl=context,
                    server_hostname=sni,
                    happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY,
                )
            else:
                connecting = loop.create_connection(
                    factory, host, port, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY
                )
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
