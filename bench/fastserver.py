"""A faster front for the fake WeChat Pay server, for throughput benchmarks only.

Not part of the package: it lives beside the benchmarks (``bench/``), which import it as
``fastserver``.

The default fake server (h11 on asyncio streams, a fresh RSA signature per answer) tops out
near 2 000 answers/s on one core, below what a fast client can send. Benchmarks need a server
that is never the bottleneck, so this module offers:

- :class:`FastServerThread`, a drop-in for ``_http.ServerThread``: one ``asyncio.Protocol``
  per connection and a minimal HTTP/1.1 parser (``Content-Length`` bodies, keep-alive,
  pipelining; no chunked request bodies, no streamed answers: those get 501). A handler
  that finishes without waiting is run inline, without a task per request.
- :class:`BenchmarkWechatPay`, the fake server on that front. It still checks every request
  signature and signs every answer, but reuses one answer signature per (signer, body) for
  the rest of the current second, with one nonce per second. **Benchmark only**: a real
  server never repeats a nonce, and tests that look at nonces must use ``FakeWechatPay``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
import ssl
import time
import types
from collections import deque
from collections.abc import Awaitable, Coroutine, Generator
from http import HTTPStatus
from typing import Any, cast

from wechatpay_chain._exceptions import VerificationError
from wechatpay_chain.testing._core import Merchant
from wechatpay_chain.testing._fake import FakeWechatPay

try:
    import httptools
except ImportError:  # pragma: no cover - httptools is a runtime dependency
    httptools = None  # type: ignore[assignment]
from wechatpay_chain.testing._http import App, HTTPReply, HTTPRequest, LoopThread

__all__ = ["BenchmarkWechatPay", "FastServerThread"]

_MAX_HEAD = 64 * 1024
_MAX_BODY = 16 * 1024 * 1024


class _BadRequest(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b"Unknown"


_REASONS = {status.value: _reason(status.value) for status in HTTPStatus}


@types.coroutine
def _resume(
    coro: Coroutine[Any, Any, HTTPReply | None], pending: Any
) -> Generator[Any, Any, HTTPReply | None]:
    """Go on with a coroutine that was started inline and is now waiting for ``pending``."""
    while True:
        try:
            sent = yield pending
        except BaseException as exc:
            try:
                pending = coro.throw(exc)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
        else:
            try:
                pending = coro.send(sent)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]


async def _wrap(awaitable: Awaitable[HTTPReply | None]) -> HTTPReply | None:
    return await awaitable


async def _finish(
    coro: Coroutine[Any, Any, HTTPReply | None], pending: Any
) -> HTTPReply | None:
    return await _resume(coro, pending)


def _encode(reply: HTTPReply, close: bool) -> bytes:
    head = [
        b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\n"
        % (reply.status, _REASONS.get(reply.status) or _reason(reply.status), len(reply.body))
    ]
    for name, value in reply.headers:
        if name.lower() == "content-length":
            continue
        head.append(f"{name}: {value}\r\n".encode("latin-1", "replace"))
    if close:
        head.append(b"Connection: close\r\n")
    head.append(b"\r\n")
    head.append(reply.body)
    return b"".join(head)


class _Connection(asyncio.Protocol):
    """One client connection: parse, answer in order, keep alive."""

    def __init__(self, server: FastServerThread) -> None:
        self._server = server
        self._buffer = bytearray()
        self._busy = False
        self._closed = False
        self._transport: asyncio.Transport | None = None
        self._peer_cert: dict[str, Any] | None = None
        self._tls = False
        # With httptools (C), parsed requests queue here; without it, _parse reads _buffer.
        self._parser: Any = None if httptools is None else httptools.HttpRequestParser(self)
        self._parsed: deque[tuple[HTTPRequest, bool] | int] = deque()
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._failed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not asserted to be an asyncio.Transport: uvloop's transports are not subclasses.
        self._transport = cast(asyncio.Transport, transport)
        self._server.connections += 1
        self._server.open.add(self._transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self._tls = True
            self._peer_cert = ssl_object.getpeercert()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._transport is not None:
            self._server.open.discard(self._transport)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:
            self._buffer += data
        elif not self._failed:
            try:
                parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                if self._parsed and not isinstance(self._parsed[-1], int):
                    self._parsed.pop()  # the request asking to upgrade: refused, not served
                self._fail(501)
            except httptools.HttpParserError:
                self._fail(400)
            if self._size > _MAX_BODY:
                self._fail(413)
        if not self._busy:
            self._process()

    def _fail(self, status: int) -> None:
        # Answered once the requests before it are; nothing more is read from the connection.
        self._failed = True
        self._parsed.append(status)

    # --- httptools' callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._body = []
        self._size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").title()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size <= _MAX_BODY:
            self._body.append(body)

    def on_message_complete(self) -> None:
        if self._size > _MAX_BODY:
            return  # answered 413 by data_received
        parser = self._parser
        request = HTTPRequest(
            parser.get_method().decode("ascii"),
            self._url.decode("latin-1"),
            self._headers,
            b"".join(self._body),
            self._peer_cert,
            self._tls,
        )
        self._parsed.append((request, parser.should_keep_alive()))

    def _parse(self) -> tuple[HTTPRequest, bool] | None:
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > _MAX_HEAD:
                raise _BadRequest(431)
            return None
        lines = bytes(buffer[:end]).split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            raise _BadRequest(400)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                raise _BadRequest(400)
            headers[name.decode("latin-1").title()] = value.strip().decode("latin-1")
        if "Transfer-Encoding" in headers:
            raise _BadRequest(501)
        try:
            length = int(headers.get("Content-Length", "0"))
        except ValueError:
            raise _BadRequest(400) from None
        if length < 0 or length > _MAX_BODY:
            raise _BadRequest(413)
        start = end + 4
        if len(buffer) < start + length:
            return None
        body = bytes(buffer[start : start + length])
        del buffer[: start + length]
        connection = headers.get("Connection", "").lower()
        keep_alive = parts[2] == b"HTTP/1.1" and connection != "close"
        request = HTTPRequest(
            parts[0].decode("ascii"),
            parts[1].decode("latin-1"),
            headers,
            body,
            self._peer_cert,
            self._tls,
        )
        return request, keep_alive

    def _next(self) -> tuple[HTTPRequest, bool] | None:
        if self._parser is None:
            return self._parse() if self._buffer else None
        if not self._parsed:
            return None
        parsed = self._parsed.popleft()
        if isinstance(parsed, int):
            raise _BadRequest(parsed)
        return parsed

    def _process(self) -> None:
        while not self._busy and not self._closed:
            try:
                parsed = self._next()
            except _BadRequest as bad:
                self._write(HTTPReply(bad.status), keep_alive=False)
                return
            if parsed is None:
                return
            request, keep_alive = parsed
            started = self._server.app(request)
            coro = started if isinstance(started, types.CoroutineType) else _wrap(started)
            try:
                pending = coro.send(None)
            except StopIteration as stop:
                self._reply(stop.value, keep_alive)
                continue
            except Exception as exc:  # a broken handler answers 500, the server lives on
                self._reply(HTTPReply(500, f"handler failed: {exc!r}".encode()), keep_alive)
                continue
            self._busy = True
            task = asyncio.get_running_loop().create_task(_finish(coro, pending))
            task.add_done_callback(functools.partial(self._finished, keep_alive=keep_alive))

    def _finished(self, task: asyncio.Task[HTTPReply | None], keep_alive: bool) -> None:
        self._busy = False
        if task.cancelled():
            self._drop()
            return
        exc = task.exception()
        if exc is not None:
            reply: HTTPReply | None = HTTPReply(500, f"handler failed: {exc!r}".encode())
        else:
            reply = task.result()
        self._reply(reply, keep_alive)
        self._process()

    def _reply(self, reply: HTTPReply | None, keep_alive: bool) -> None:
        if reply is not None and getattr(reply, "stream", None) is not None:
            # Streamed answers (file downloads) and resets are the default server's job.
            reply = HTTPReply(501, b"streamed answers need the default fake server front")
        if reply is None:
            self._drop()
        elif reply.delay:
            self._busy = True

            def later() -> None:
                self._busy = False
                self._write(reply, keep_alive)
                self._process()

            asyncio.get_running_loop().call_later(reply.delay, later)
        else:
            self._write(reply, keep_alive)

    def _write(self, reply: HTTPReply, keep_alive: bool) -> None:
        if self._closed or self._transport is None:
            return
        self._transport.write(_encode(reply, close=not keep_alive))
        if not keep_alive:
            self._drop()

    def _drop(self) -> None:
        self._closed = True
        self._buffer.clear()
        self._parsed.clear()
        if self._transport is not None:
            self._transport.close()


class FastServerThread(LoopThread):
    """Serves ``app`` on 127.0.0.1 from its own thread; the interface of ``ServerThread``."""

    thread_name = "fake-wechatpay-fast"

    def __init__(
        self,
        app: App,
        *,
        ssl_context: ssl.SSLContext | None = None,
        port: int = 0,
        loop_factory: Any = None,
    ) -> None:
        super().__init__(loop_factory)
        self.app = app
        self._ssl = ssl_context
        self._want_port = port
        self._servers: list[asyncio.AbstractServer] = []
        self.open: set[asyncio.Transport] = set()

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        for transport in list(self.open):
            transport.close()
        await asyncio.sleep(0)

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        plain = await loop.create_server(
            lambda: _Connection(self), "127.0.0.1", self._want_port, backlog=1024
        )
        self._servers.append(plain)
        self.port = plain.sockets[0].getsockname()[1]
        if self._ssl is not None:
            secure = await loop.create_server(
                lambda: _Connection(self), "127.0.0.1", 0, ssl=self._ssl, backlog=1024
            )
            self._servers.append(secure)
            self.tls_port = secure.sockets[0].getsockname()[1]

    def drop_connections(self) -> None:
        """Close every open connection (as WeChat Pay does with idle ones)."""
        loop = self._loop
        if loop is not None:
            for transport in list(self.open):
                loop.call_soon_threadsafe(transport.close)


class BenchmarkWechatPay(FakeWechatPay):
    """``FakeWechatPay`` on :class:`FastServerThread`, reusing answer signatures per second.

    Every request signature is still checked and every answer is validly signed; only the
    nonce and signature repeat for identical bodies within one second (benchmark only).
    ``keep_requests`` bounds ``requests`` so a long run does not grow without limit.
    ``front="h11"`` keeps the default HTTP server and ``reuse_signatures=False`` signs every
    answer afresh, to measure what each of the two costs.
    """

    def __init__(
        self,
        *,
        merchant: Merchant | None = None,
        mode: str = "public_key",
        front: str = "fast",
        reuse_signatures: bool = True,
        port: int = 0,
        keep_requests: int = 1000,
        loop_factory: Any = None,
    ) -> None:
        super().__init__(merchant=merchant, mode=mode)
        if front == "fast":
            self._server = FastServerThread(  # type: ignore[assignment]
                self._handle, port=port, loop_factory=loop_factory
            )
        elif front != "h11":
            raise ValueError(f"front must be 'fast' or 'h11', not {front!r}")
        self._reuse = reuse_signatures
        self._keep_requests = keep_requests
        self._signatures: dict[tuple[str, bytes], tuple[int, list[tuple[str, str]]]] = {}
        self._second = -1
        self._nonce = ""
        self._static: dict[tuple[str, str], bytes] = {}
        self._served = 0

    def static(self, method: str, path: str, payload: Any) -> None:
        """Answer ``method /path`` (exactly, no query) with ``payload`` on a short path.

        The request signature is checked as on every route (401 when it does not verify)
        and the answer is signed, but nothing else of the fake server runs: the request is
        not recorded, faults do not apply, no handler is called. For throughput benchmarks,
        where the server's own cost must stay far below the client's.
        """
        target = "/" + path.lstrip("/")
        self._static[(method.upper(), target)] = json.dumps(
            payload, ensure_ascii=False, separators=(",", ":")
        ).encode("utf-8")

    async def _handle(self, http: HTTPRequest) -> HTTPReply | None:
        body = self._static.get((http.method, http.target))
        if body is not None:
            try:
                self.check_v3_signature(http, http.body)
            except VerificationError as exc:
                return self._answer(401, {"code": "SIGN_ERROR", "message": str(exc)}, None)
            self._served += 1
            headers = [
                ("Request-ID", f"bench-{self._served}"),
                ("Content-Type", "application/json; charset=utf-8"),
            ]
            headers += self.sign_answer(body)
            return HTTPReply(200, body, headers)
        if len(self.requests) > self._keep_requests:
            del self.requests[: -self._keep_requests // 2]
        return await super()._handle(http)

    def sign_answer(self, body: bytes, kind: str | None = None) -> list[tuple[str, str]]:
        if kind is not None or not self._reuse:
            return super().sign_answer(body, kind)
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._nonce = secrets.token_hex(16)
            self._signatures.clear()
        key = (self.signer.serial, body)
        cached = self._signatures.get(key)
        if cached is None:
            if len(self._signatures) > 256:
                self._signatures.clear()
            cached = (now, self._sign_at(body, now, self._nonce))
            self._signatures[key] = cached
        return cached[1]

    def _sign_at(self, body: bytes, timestamp: int, nonce: str) -> list[tuple[str, str]]:
        from wechatpay_chain import crypto
        from wechatpay_chain.protocol import v3 as _v3

        signer = self.signer
        signature = crypto.sign_sha256_rsa(
            _v3.response_message(str(timestamp), nonce, body), signer.private_key
        )
        return [
            ("Wechatpay-Timestamp", str(timestamp)),
            ("Wechatpay-Nonce", nonce),
            ("Wechatpay-Signature", signature),
            ("Wechatpay-Serial", signer.serial),
            ("Wechatpay-Signature-Type", _v3.AUTH_SCHEME),
        ]
