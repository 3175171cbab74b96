"""The lean floor: raw asyncio protocols, a C HTTP parser, keep-alive, nothing else.

Not a client anyone should ship: no TLS, no proxies, no timeouts, no idle expiry. It shows
what one core can do with the same crypto when the HTTP stack costs almost nothing, which is
the ceiling the SDK's default path is measured against.
"""

from __future__ import annotations

import asyncio
from typing import Any

try:
    import httptools
except ImportError:  # the pure-Python parser below keeps the row running without it
    httptools = None

PARSER = "httptools" if httptools is not None else "python"


class _PyResponseParser:
    """Enough of httptools.HttpResponseParser for Content-Length answers (fallback only)."""

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol
        self._buffer = bytearray()
        self._status = 0

    def get_status_code(self) -> int:
        return self._status

    def should_keep_alive(self) -> bool:
        return True

    def feed_data(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self._buffer[:end]).split(b"\r\n")
            length = 0
            pairs = []
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                value = value.strip()
                pairs.append((name, value))
                if name.lower() == b"content-length":
                    length = int(value)
            if len(self._buffer) < end + 4 + length:
                return
            self._status = int(lines[0].split(b" ", 2)[1])
            for name, value in pairs:
                self._protocol.on_header(name, value)
            self._protocol.on_body(bytes(self._buffer[end + 4 : end + 4 + length]))
            del self._buffer[: end + 4 + length]
            self._protocol.on_message_complete()


class _H11ResponseParser:
    """The same callbacks driven by h11 (pure Python, what httpcore parses with)."""

    def __init__(self, protocol: Any) -> None:
        import h11

        self._h11 = h11
        self._protocol = protocol
        self._conn = h11.Connection(h11.CLIENT)
        self._status = 0
        self._keep = True

    def get_status_code(self) -> int:
        return self._status

    def should_keep_alive(self) -> bool:
        return self._keep

    def feed_data(self, data: bytes) -> None:
        h11 = self._h11
        conn = self._conn
        if conn.our_state is h11.IDLE:  # h11 must see a request go out before the answer
            conn.send(h11.Request(method="POST", target="/", headers=[("Host", "x"),
                                                                      ("Content-Length", "0")]))
            conn.send(h11.EndOfMessage())
        conn.receive_data(data)
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                return
            if isinstance(event, h11.Response):
                self._status = event.status_code
                for name, value in event.headers:
                    self._protocol.on_header(name, value)
            elif isinstance(event, h11.Data):
                self._protocol.on_body(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                self._keep = conn.our_state is h11.DONE and conn.their_state is h11.DONE
                conn.start_next_cycle()
                self._protocol.on_message_complete()
                return


def make_parser(protocol: Any, kind: str = PARSER) -> Any:
    if kind == "h11":
        return _H11ResponseParser(protocol)
    if kind == "httptools" and httptools is not None:
        return httptools.HttpResponseParser(protocol)
    return _PyResponseParser(protocol)


class _Connection(asyncio.Protocol):
    parser_kind = PARSER

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser: Any = make_parser(self, self.parser_kind)
        self.waiter: asyncio.Future[tuple[int, dict[bytes, bytes], bytes]] | None = None
        self.headers: dict[bytes, bytes] = {}
        self.body: list[bytes] = []
        self.alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    # parser callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        waiter = self.waiter
        self.waiter = None
        result = (self.parser.get_status_code(), self.headers, b"".join(self.body))
        self.alive = self.alive and self.parser.should_keep_alive()
        self.headers = {}
        self.body = []
        if waiter is not None and not waiter.done():
            waiter.set_result(result)

    def roundtrip(self, raw: bytes) -> asyncio.Future[tuple[int, dict[bytes, bytes], bytes]]:
        assert self.transport is not None
        waiter = asyncio.get_running_loop().create_future()
        self.waiter = waiter
        self.transport.write(raw)
        return waiter


class LeanPool:
    """Idle keep-alive connections to one host; a new one only when none is idle."""

    def __init__(self, host: str, port: int, parser: str = PARSER) -> None:
        self.host = host
        self.port = port
        self._factory = type("_Conn", (_Connection,), {"parser_kind": parser})
        self._idle: list[_Connection] = []
        self._all: list[_Connection] = []

    async def request(self, raw: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        conn = self._idle.pop() if self._idle else await self._connect()
        try:
            result = await conn.roundtrip(raw)
        except BaseException:
            if conn.transport is not None:
                conn.transport.close()
            raise
        if conn.alive:
            self._idle.append(conn)
        return result

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(self._factory, self.host, self.port)
        self._all.append(conn)
        return conn

    def close(self) -> None:
        for conn in self._all:
            if conn.transport is not None:
                conn.transport.close()
        self._all.clear()
        self._idle.clear()
