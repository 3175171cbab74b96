"""The wire, misbehaving: answers no well-behaved server sends, from a raw loopback server.

Each test runs against the engine with both parsers (asyncio) and, where the behaviour is
httpx's own transport's too, against that transport on trio (the SDK's path there). Every
server counts the requests it read in full, so "sent once, never twice" is checked as well.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import anyio
import h11
import httpx
import pytest
from _raw_server import Peer, RawServer, Received, serve_forever

from wechatpay_chain.transport.engine import MAX_HEAD, MAX_HEADERS, AsyncEngine
from wechatpay_chain.transport.httpcore_guard import retire_tainted

pytestmark = pytest.mark.anyio

SETUPS = ["engine-httptools", "engine-h11", "httpx-trio"]


@pytest.fixture(params=SETUPS)
def setup(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def anyio_backend(setup: str) -> str:
    return "trio" if setup == "httpx-trio" else "asyncio"


#: For the engine's own behaviour (httpx's transport is checked elsewhere): only the engine
#: setups are generated, so nothing is collected just to be skipped.
engine_only = pytest.mark.parametrize("setup", ["engine-httptools", "engine-h11"], indirect=True)


def client(setup: str, **options: Any) -> httpx.AsyncClient:
    transport: httpx.AsyncBaseTransport
    if setup == "httpx-trio":
        transport = httpx.AsyncHTTPTransport()
    else:
        transport = AsyncEngine(parser=setup.removeprefix("engine-"))
    options.setdefault("timeout", 5.0)
    return httpx.AsyncClient(transport=transport, **options)


def tagged(peer: Peer, got: Received) -> None:
    """Answers with the request's own body: a request can tell its answer from another's."""
    peer.answer(got.body or b"ok")


# --- 1. a finished answer cannot be written into ----------------------------------------------
async def test_bytes_after_an_answer_neither_change_it_nor_reach_the_next_request(
    setup: str,
) -> None:
    def respond(peer: Peer, got: Received) -> None:
        if got.body == b"first":
            peer.send(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\nX-Id: a\r\n\r\nfirst"
                b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-Id: b\r\n\r\nforged"
            )
        else:
            tagged(peer, got)

    with RawServer(serve_forever(respond)) as server:
        async with client(setup) as http:
            first = await http.post(server.url, content=b"first")
            assert first.status_code == 404
            assert first.reason_phrase == "Not Found"
            assert first.headers.get_list("x-id") == ["a"]
            assert first.content == b"first"
            if setup == "httpx-trio":
                # httpcore would read the stray answer as the next one (encode/httpcore#1093);
                # the SDK's guard retires such connections after each answer.
                retire_tainted(http._transport)
            second = await http.post(server.url, content=b"second")
            assert second.status_code == 200 and second.content == b"second"
            assert server.connections == 2  # the first connection was never reused
            assert [r.body for r in server.requests] == [b"first", b"second"]


async def test_no_content_answer_followed_by_stray_bytes_stands(setup: str) -> None:
    def respond(peer: Peer, got: Received) -> None:
        peer.send(b"HTTP/1.1 204 No Content\r\nX-Id: a\r\n\r\nHTTP/1.1 200 OK\r\nX-Id: b\r\n\r\n")

    with RawServer(serve_forever(respond)) as server:
        async with client(setup) as http:
            answer = await http.get(server.url)
            assert answer.status_code == 204 and answer.content == b""
            assert answer.headers.get_list("x-id") == ["a"]
            assert len(server.requests) == 1


async def test_trailers_never_become_headers(setup: str) -> None:
    def respond(peer: Peer, got: Received) -> None:
        peer.send(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nWechatpay-Signature: real\r\n\r\n"
            b"5\r\nhello\r\n0\r\nWechatpay-Signature: forged\r\nX-Late: 1\r\n\r\n"
        )

    with RawServer(serve_forever(respond)) as server:
        async with client(setup) as http:
            for _ in range(2):
                answer = await http.get(server.url)
                assert answer.content == b"hello"
                assert answer.headers.get_list("wechatpay-signature") == ["real"]
                assert "x-late" not in answer.headers
            assert server.connections == 1  # trailers end the answer cleanly: reused


# --- 2. a connection the server closed while the loop was busy --------------------------------
@pytest.mark.parametrize("how", ["close", "half-close"])
async def test_connection_closed_while_the_loop_is_busy_is_not_reused(setup: str, how: str) -> None:
    def handler(peer: Peer) -> None:
        got = peer.request()
        if got is None:
            return
        tagged(peer, got)
        if how == "close":
            peer.sock.close()
            return
        peer.half_close()  # FIN, yet it still reads and would process another POST
        while peer.request() is not None:
            pass

    with RawServer(handler) as server:
        async with client(setup) as http:
            assert (await http.post(server.url, content=b"one")).content == b"one"
            time.sleep(0.2)  # synchronous work (signing, say): the FIN arrives meanwhile
            assert (await http.post(server.url, content=b"two")).content == b"two"
            assert server.connections == 2
            assert [r.body for r in server.requests] == [b"one", b"two"]  # each once


async def test_stray_bytes_on_an_idle_connection_while_the_loop_is_busy(setup: str) -> None:
    def handler(peer: Peer) -> None:
        got = peer.request()
        if got is None:
            return
        tagged(peer, got)
        time.sleep(0.05)
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged")
        while (got := peer.request()) is not None:
            tagged(peer, got)

    with RawServer(handler) as server:
        async with client(setup) as http:
            assert (await http.post(server.url, content=b"one")).content == b"one"
            time.sleep(0.2)  # the stray answer lands in the socket, unread
            assert (await http.post(server.url, content=b"two")).content == b"two"
            assert server.connections == 2


# --- 3. the head is bounded -------------------------------------------------------------------
async def test_an_endless_head_is_refused(setup: str) -> None:
    def respond(peer: Peer, got: Received) -> None:
        peer.send(b"HTTP/1.1 200 OK\r\nX-Padding: ")
        block = b"p" * 65536
        try:
            for _ in range(128):  # an 8 MiB header, if the client kept reading
                peer.send(block)
        except OSError:
            return

    with RawServer(serve_forever(respond)) as server:
        async with client(setup) as http:
            with pytest.raises(httpx.RemoteProtocolError) as info:
                await http.get(server.url)
            if setup != "httpx-trio":
                assert f"head exceeds {MAX_HEAD} bytes" in str(info.value)
            assert len(server.requests) == 1


@engine_only
async def test_too_many_header_lines_are_refused(setup: str) -> None:

    def respond(peer: Peer, got: Received) -> None:
        lines = b"".join(b"X-%d: 1\r\n" % i for i in range(MAX_HEADERS + 1))
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + lines + b"\r\nok")

    with RawServer(serve_forever(respond)) as server:
        async with client(setup) as http:
            with pytest.raises(httpx.RemoteProtocolError, match="header lines"):
                await http.get(server.url)


async def test_a_large_head_within_bounds_is_read(setup: str) -> None:
    def respond(peer: Peer, got: Received) -> None:
        lines = b"".join(b"X-%d: %b\r\n" % (i, b"v" * 400) for i in range(100))
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + lines + b"\r\nok")

    with RawServer(serve_forever(respond)) as server:
        async with client(setup) as http:
            answer = await http.get(server.url)
            assert answer.content == b"ok" and answer.headers["x-99"] == "v" * 400


# --- 4. transfer codings other than chunked ---------------------------------------------------
@pytest.mark.parametrize(
    "coding",
    [
        b"gzip, chunked",
        b"gzip",
        b"identity",
        b"chunked, chunked",
        b"chunked\r\nTransfer-Encoding: chunked",
    ],
)
async def test_a_transfer_coding_other_than_chunked_is_refused(setup: str, coding: bytes) -> None:
    def respond(peer: Peer, got: Received) -> None:
        peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: %b\r\n\r\n2\r\nok\r\n0\r\n\r\n" % coding)

    with RawServer(serve_forever(respond)) as server:
        async with client(setup) as http:
            with pytest.raises(httpx.RemoteProtocolError):
                await http.get(server.url)
            assert len(server.requests) == 1


@engine_only
async def test_content_length_with_transfer_encoding_is_refused(setup: str) -> None:

    def respond(peer: Peer, got: Received) -> None:
        peer.send(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\nok\r\n0\r\n\r\n"
        )

    with RawServer(serve_forever(respond)) as server:
        async with client(setup) as http:
            with pytest.raises(httpx.RemoteProtocolError, match="Content-Length"):
                await http.get(server.url)


# --- 5. http_version --------------------------------------------------------------------------
async def test_http_version_is_the_answers(setup: str) -> None:
    def respond(peer: Peer, got: Received) -> None:
        if got.body == b"1.0":
            peer.send(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n1.0")
        else:
            tagged(peer, got)

    with RawServer(serve_forever(respond)) as server:
        async with client(setup) as http:
            old = await http.post(server.url, content=b"1.0")
            assert old.http_version == "HTTP/1.0" and old.content == b"1.0"
            new = await http.post(server.url, content=b"1.1")
            assert new.http_version == "HTTP/1.1" and new.content == b"1.1"
            assert server.connections == 2  # HTTP/1.0 without keep-alive: not reused


# --- 6. happy eyeballs ------------------------------------------------------------------------
def _blackhole() -> tuple[socket.socket, socket.socket, int]:
    """A listener on 127.0.0.2 whose accept queue is full: further SYNs are dropped, so
    a connect there hangs (a host whose first address drops connections)."""
    listener = socket.socket()
    listener.bind(("127.0.0.2", 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname(), timeout=2)
    return listener, filler, listener.getsockname()[1]


@engine_only
async def test_the_next_address_is_tried_when_the_first_drops_connections(
    setup: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener, filler, port = _blackhole()
    try:
        with RawServer(serve_forever(tagged), port=port) as server:
            loop = asyncio.get_running_loop()

            async def resolve(host: str, port: int, **_: Any) -> list[Any]:
                assert host == "pay.example"
                stream = socket.SOCK_STREAM
                return [
                    (socket.AF_INET, stream, 6, "", ("127.0.0.2", port)),
                    (socket.AF_INET, stream, 6, "", ("127.0.0.1", port)),
                ]

            monkeypatch.setattr(loop, "getaddrinfo", resolve)
            async with client(setup, timeout=httpx.Timeout(5.0, connect=3.0)) as http:
                started = loop.time()
                answer = await http.post(f"http://pay.example:{port}/", content=b"hi")
                took = loop.time() - started
            assert answer.content == b"hi"
            assert took < 1.5  # not the 3 s connect timeout
            assert len(server.requests) == 1
    finally:
        filler.close()
        listener.close()


# --- 7. the read timeout starts once the body is out ------------------------------------------
async def test_read_timeout_starts_after_a_large_body_is_written(setup: str) -> None:
    size = 16 << 20

    def slow_then_fast(peer: Peer) -> None:
        # Slow for a second (longer than the read timeout), while the client is still
        # writing (the body is far larger than what the kernels buffer), then at full speed.
        head = b""
        while b"\r\n\r\n" not in head:
            head += peer.sock.recv(4096)
        got = len(head.partition(b"\r\n\r\n")[2])
        while got < size:
            data = peer.sock.recv(64 * 1024)
            if not data:
                return
            got += len(data)
            if got < 2 << 20:
                time.sleep(0.03)
        peer.answer(b"%d" % got)

    with RawServer(slow_then_fast) as server:
        timeout = httpx.Timeout(5.0, read=0.5, write=3.0)
        async with client(setup, timeout=timeout) as http:
            started = time.monotonic()
            answer = await http.post(server.url, content=b"b" * size)
            assert answer.content == b"%d" % size
            assert time.monotonic() - started > 0.5  # longer than the read timeout


# --- 8. a Content-Length that disagrees with the body -----------------------------------------
@pytest.mark.parametrize("declared", ["3", "30", "5, 6", "x"])
async def test_a_content_length_that_disagrees_with_the_body_is_refused(
    setup: str, declared: str
) -> None:
    with RawServer(serve_forever(tagged)) as server:
        async with client(setup) as http:
            # (httpx's own transport lets h11's exception through, unmapped)
            with pytest.raises((httpx.LocalProtocolError, h11.LocalProtocolError)):
                await http.post(
                    server.url, content=b"hello world", headers={"Content-Length": declared}
                )
            assert (await http.post(server.url, content=b"next")).content == b"next"
            await anyio.sleep(0.05)
            assert [r.body for r in server.requests] == [b"next"]  # no smuggled request


@pytest.mark.parametrize("declared", ["3", "30"])
@engine_only
async def test_a_streamed_body_that_disagrees_with_its_content_length_is_refused(
    setup: str, declared: str
) -> None:

    async def parts() -> Any:
        for part in (b"hello", b" ", b"world"):
            yield part

    with RawServer(serve_forever(tagged)) as server:
        async with client(setup) as http:
            with pytest.raises(httpx.LocalProtocolError, match="Content-Length"):
                await http.post(server.url, content=parts(), headers={"Content-Length": declared})
            assert (await http.post(server.url, content=b"next")).content == b"next"
            await anyio.sleep(0.05)
            assert [r.body for r in server.requests] == [b"next"]


@engine_only
async def test_content_length_with_transfer_encoding_in_a_request_is_refused(
    setup: str,
) -> None:
    with RawServer(serve_forever(tagged)) as server:
        async with client(setup) as http:
            with pytest.raises(httpx.LocalProtocolError, match="both"):
                await http.post(
                    server.url, content=b"framed", headers={"Transfer-Encoding": "chunked"}
                )
            assert server.connections == 0
