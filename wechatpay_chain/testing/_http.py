"""A small HTTP/1.1 server (h11 on asyncio streams) running in its own thread.

It backs the fake WeChat Pay server: real sockets on loopback, optional TLS with client
certificates, keep-alive, and the faults a client must survive (slow answers, dropped
connections). Apps are ``async (HTTPRequest) -> HTTPReply | None`` (None drops the connection).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import tempfile
import threading
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import h11

__all__ = ["HTTPReply", "HTTPRequest", "Headers", "ServerThread"]


class Headers(dict[str, str]):
    """Request headers; any spelling of a name finds it (names are kept title-cased)."""

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.title())

    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self, name.title(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.title())


@dataclass(slots=True)
class HTTPRequest:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    client_cert: dict[str, Any] | None = None
    tls: bool = False
    #: A body larger than SPOOL_LIMIT, in a temporary file (``body`` is then empty).
    body_file: BinaryIO | None = None


@dataclass(slots=True)
class HTTPReply:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay: float = 0.0
    #: A streamed body instead of ``body``: ``length`` bytes (chunked when None). A stream
    #: that ends short of ``length`` closes the connection: a truncated answer.
    stream: Iterable[bytes] | AsyncIterable[bytes] | None = None
    length: int | None = None
    #: With a truncated stream: end with a TCP reset (RST) instead of a clean close.
    reset: bool = False


#: Request bodies above this size go to a temporary file (large uploads).
SPOOL_LIMIT = 16 * 1024 * 1024


class _Body:
    """A request body: in memory while small, spooled to a temporary file beyond."""

    __slots__ = ("chunks", "file", "size")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.file: BinaryIO | None = None
        self.size = 0

    def add(self, data: bytes) -> None:
        self.size += len(data)
        if self.file is None and self.size > SPOOL_LIMIT:
            self.file = tempfile.TemporaryFile()  # closed with the request, when collected
            self.file.writelines(self.chunks)
            self.chunks = []
        if self.file is not None:
            self.file.write(data)
        else:
            self.chunks.append(data)

    def data(self) -> bytes:
        if self.file is not None:
            self.file.seek(0)
        return b"".join(self.chunks)


async def _send_stream(
    conn: h11.Connection, writer: asyncio.StreamWriter, reply: HTTPReply
) -> bool:
    """Send a streamed reply; False when it ended short of its length (connection to close)."""
    headers = list(reply.headers)
    if reply.length is not None:
        headers.insert(0, ("Content-Length", str(reply.length)))
    writer.write(conn.send(h11.Response(status_code=reply.status, headers=headers)) or b"")
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        stream = reply.stream
        if isinstance(stream, AsyncIterable):
            async for chunk in stream:
                yield chunk
        else:
            assert stream is not None
            for chunk in stream:
                yield chunk

    async for chunk in chunks():
        if reply.length is not None and sent + len(chunk) > reply.length:
            chunk = chunk[: reply.length - sent]
        if chunk:
            writer.write(conn.send(h11.Data(data=chunk)) or b"")
            sent += len(chunk)
            await writer.drain()
    if reply.length is not None and sent < reply.length:
        return False
    writer.write(conn.send(h11.EndOfMessage()) or b"")
    await writer.drain()
    return True


async def _reset(writer: asyncio.StreamWriter) -> None:
    """Abort the connection with an RST once the peer has had time to read what was sent."""
    await asyncio.sleep(0.05)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


App = Callable[[HTTPRequest], Awaitable[HTTPReply | None]]


class LoopThread:
    """An asyncio loop in a daemon thread: ``start()`` runs ``_listen()`` and serves until
    ``stop()``, which runs ``_shutdown()``. Servers subclass it and fill in both."""

    thread_name = "fake-wechatpay"

    def __init__(self, loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None) -> None:
        self._loop_factory = loop_factory or asyncio.new_event_loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.tls_port = 0
        #: Connections accepted so far (tests check that clients reuse theirs).
        self.connections = 0

    def start(self) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = self._loop_factory()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._listen())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name=self.thread_name, daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = self._thread = None

    async def _listen(self) -> None:
        raise NotImplementedError

    async def _shutdown(self) -> None:
        """Close what ``_listen`` opened; runs on the loop after it stopped serving."""


class ServerThread(LoopThread):
    """Serves ``app`` on 127.0.0.1 (plain, and TLS when ``ssl_context`` is given)."""

    def __init__(self, app: App, *, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__()
        self._app = app
        self._ssl = ssl_context
        self._servers: list[asyncio.Server] = []
        self._writers: set[asyncio.StreamWriter] = set()

    async def _listen(self) -> None:
        plain = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self._servers.append(plain)
        self.port = plain.sockets[0].getsockname()[1]
        if self._ssl is not None:
            secure = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._ssl)
            self._servers.append(secure)
            self.tls_port = secure.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        for writer in list(self._writers):
            writer.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def drop_connections(self) -> None:
        """Close every open connection (as WeChat Pay does with idle ones)."""
        if self._loop is not None:
            for writer in list(self._writers):
                self._loop.call_soon_threadsafe(writer.close)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self.connections += 1
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        ssl_object = writer.get_extra_info("ssl_object")
        peer_cert = ssl_object.getpeercert() if ssl_object is not None else None
        try:
            while True:
                request = await self._read(conn, reader)
                if request is None:
                    return
                request.client_cert = peer_cert
                request.tls = ssl_object is not None
                try:
                    reply = await self._app(request)
                except Exception as exc:  # a broken handler answers 500, the server lives on
                    reply = HTTPReply(500, f"fake server handler failed: {exc!r}".encode())
                if reply is None:
                    return
                if reply.delay:
                    await asyncio.sleep(reply.delay)
                if reply.stream is not None:
                    if not await _send_stream(conn, writer, reply):
                        if reply.reset:
                            await _reset(writer)
                        return  # a truncated answer: close without finishing the body
                    if conn.our_state is h11.MUST_CLOSE:
                        return
                    conn.start_next_cycle()
                    continue
                headers = [("Content-Length", str(len(reply.body))), *reply.headers]
                data = conn.send(h11.Response(status_code=reply.status, headers=headers))
                if request.method != "HEAD":  # a HEAD answer announces a body it never sends
                    data = (data or b"") + (conn.send(h11.Data(data=reply.body)) or b"")
                data = (data or b"") + (conn.send(h11.EndOfMessage()) or b"")
                writer.write(data)
                await writer.drain()
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (
            ConnectionError,
            h11.RemoteProtocolError,
            h11.LocalProtocolError,  # a handler's reply HTTP cannot carry (a body on a 204)
            asyncio.IncompleteReadError,
            asyncio.CancelledError,  # the server is stopping
        ):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    @staticmethod
    async def _read(conn: h11.Connection, reader: asyncio.StreamReader) -> HTTPRequest | None:
        head: h11.Request | None = None
        body = _Body()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body.add(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                headers = Headers()
                for name, value in head.headers:
                    key = name.decode("latin-1").title()
                    headers[key] = value.decode("latin-1")
                return HTTPRequest(
                    head.method.decode("ascii"),
                    head.target.decode("latin-1"),
                    headers,
                    body.data(),
                    body_file=body.file,
                )
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None
