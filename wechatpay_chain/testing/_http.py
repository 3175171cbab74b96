"""A small HTTP/1.1 server (h11 on asyncio streams) running in its own thread.

It backs the fake WeChat Pay server: real sockets on loopback, optional TLS with client
certificates, keep-alive, and the faults a client must survive (slow answers, dropped
connections). Apps are ``async (HTTPRequest) -> HTTPReply | None`` (None drops the connection).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import h11

__all__ = ["HTTPReply", "HTTPRequest", "ServerThread"]


@dataclass(slots=True)
class HTTPRequest:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    client_cert: dict[str, Any] | None = None
    tls: bool = False


@dataclass(slots=True)
class HTTPReply:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay: float = 0.0


App = Callable[[HTTPRequest], Awaitable[HTTPReply | None]]


class ServerThread:
    """Serves ``app`` on 127.0.0.1 (plain, and TLS when ``ssl_context`` is given)."""

    def __init__(self, app: App, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._app = app
        self._ssl = ssl_context
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.Server] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.tls_port = 0
        #: Connections accepted so far (tests check that clients reuse theirs).
        self.connections = 0

    def start(self) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
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

        self._thread = threading.Thread(target=run, name="fake-wechatpay", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]

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

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = self._thread = None

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
                headers = [("Content-Length", str(len(reply.body))), *reply.headers]
                data = conn.send(h11.Response(status_code=reply.status, headers=headers))
                data = (data or b"") + (conn.send(h11.Data(data=reply.body)) or b"")
                data += conn.send(h11.EndOfMessage()) or b""
                writer.write(data)
                await writer.drain()
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (ConnectionError, h11.RemoteProtocolError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    @staticmethod
    async def _read(conn: h11.Connection, reader: asyncio.StreamReader) -> HTTPRequest | None:
        head: h11.Request | None = None
        chunks: list[bytes] = []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                headers: dict[str, str] = {}
                for name, value in head.headers:
                    key = name.decode("latin-1").title()
                    headers[key] = value.decode("latin-1")
                return HTTPRequest(
                    head.method.decode("ascii"),
                    head.target.decode("latin-1"),
                    headers,
                    b"".join(chunks),
                )
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None
