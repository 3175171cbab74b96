"""A misbehaving HTTP/1.1 server on loopback, for wire-level tests.

Plain blocking sockets in a thread: it runs whatever the client's event loop (asyncio, trio)
is doing, even while that loop is blocked in synchronous work, and it can send any bytes at
all: stray bytes after an answer, trailers, huge heads, half-closes, trickles. Each
connection runs ``handler(peer)``; the server counts connections and records every request
it read in full (the tests' "did it arrive, how many times").
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Received:
    line: str
    headers: dict[str, str]
    body: bytes


@dataclass
class RawServer:
    handler: Callable[[Peer], None]
    host: str = "127.0.0.1"
    port: int = 0
    connections: int = 0
    requests: list[Received] = field(default_factory=list)
    _sock: socket.socket | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _peers: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopped: bool = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self) -> RawServer:
        sock = socket.create_server((self.host, self.port))
        sock.settimeout(0.05)
        self._sock = sock
        self.port = sock.getsockname()[1]
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stopped:
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            conn.settimeout(10.0)
            with self._lock:
                self.connections += 1
                self._peers.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        peer = Peer(self, conn)
        try:
            self.handler(peer)
        except OSError:
            pass  # the client went away: what the test looks at is on the client side
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def stop(self) -> None:
        self._stopped = True
        with self._lock:
            for conn in self._peers:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for thread in self._threads:
            thread.join(5)
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> RawServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Peer:
    """The server side of one connection."""

    def __init__(self, server: RawServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self._buffer = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self._buffer += data
        return True

    def read_exactly(self, size: int) -> bytes | None:
        while len(self._buffer) < size:
            if not self._fill():
                return None
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def read_line(self) -> bytes | None:
        while b"\r\n" not in self._buffer:
            if not self._fill():
                return None
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line

    def request(self) -> Received | None:
        """The next whole request (recorded on the server), or None when the client closed
        (or sent only part of one)."""
        try:
            while b"\r\n\r\n" not in self._buffer:
                if not self._fill():
                    return None
        except OSError:
            return None
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        try:
            if "content-length" in headers:
                got = self.read_exactly(int(headers["content-length"]))
                if got is None:
                    return None
                body = got
            elif headers.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    size_line = self.read_line()
                    if size_line is None:
                        return None
                    size = int(size_line.strip(), 16)
                    chunk = self.read_exactly(size + 2)
                    if chunk is None:
                        return None
                    if size == 0:
                        break
                    body += chunk[:-2]
        except OSError:
            return None
        received = Received(lines[0], headers, body)
        with self.server._lock:
            self.server.requests.append(received)
        return received

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self, body: bytes = b"ok", status: int = 200, extra: bytes = b"") -> None:
        self.send(
            b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n%b\r\n%b" % (status, len(body), extra, body)
        )

    def half_close(self) -> None:
        """FIN: the server writes no more, yet still reads."""
        self.sock.shutdown(socket.SHUT_WR)

    def trickle(self, data: bytes, every: float) -> None:
        for i in range(len(data)):
            self.send(data[i : i + 1])
            time.sleep(every)


def serve_forever(respond: Callable[[Peer, Received], None]) -> Callable[[Peer], None]:
    """A keep-alive handler: every request on the connection gets ``respond``."""

    def handler(peer: Peer) -> None:
        while True:
            got = peer.request()
            if got is None:
                return
            respond(peer, got)

    return handler
