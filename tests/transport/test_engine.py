"""The asyncio connection engine (_engine.py): pooling, timeouts, errors, streaming, TLS.

Against the fake WeChat Pay server over loopback, and small raw asyncio servers where a test
needs an answer no well-behaved server gives. The engine is asyncio-only: every test here
runs on asyncio (trio keeps httpx's own transport; see the wiring tests at the end).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

import wechatpay_chain.transport.engine as engine_module
from wechatpay_chain import Client
from wechatpay_chain.testing import FakeWechatPay
from wechatpay_chain.transport.engine import AsyncEngine
from wechatpay_chain.transport.factory import PoolFactory

pytestmark = pytest.mark.anyio

Handler = Callable[["Peer"], Awaitable[None]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["httptools", "h11"])
def parser(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def quick(**timeouts: float | None) -> dict[str, Any]:
    """Request extensions with the given timeouts (others 5 s)."""
    values: dict[str, float | None] = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}
    values.update(timeouts)
    return {"timeout": values}


def request(url: str, method: str = "GET", **kwargs: Any) -> httpx.Request:
    kwargs.setdefault("extensions", quick())
    return httpx.Request(method, url, **kwargs)


async def fetch(engine: AsyncEngine, built: httpx.Request) -> httpx.Response:
    response = await engine.handle_async_request(built)
    await response.aread()
    return response


# --- a raw server: one handler per connection, counting connections and requests --------------
class Peer:
    """The server side of one connection, with a minimal HTTP/1.1 request reader."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def request(self) -> tuple[str, dict[str, str], bytes] | None:
        """``(request line, headers, body)``, or None when the client closed."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = b""
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            while True:
                size = int((await self.reader.readline()).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
        return lines[0], headers, body

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def answer(self, body: bytes = b"ok", status: int = 200, extra: str = "") -> None:
        self.send(
            f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body
        )


class RawServer:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests = 0
        self.server: asyncio.base_events.Server | None = None
        self.url = ""

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/"
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(Peer(reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


def answering(server_ref: list[RawServer], delay: float = 0.0, extra: str = "") -> Handler:
    """A keep-alive server answering every request with its body (or ``ok``)."""

    async def handler(peer: Peer) -> None:
        while True:
            got = await peer.request()
            if got is None:
                return
            server_ref[0].requests += 1
            if delay:
                await asyncio.sleep(delay)
            peer.answer(got[2] or b"ok", extra=extra)

    return handler


async def keep_alive_server(delay: float = 0.0, extra: str = "") -> RawServer:
    ref: list[RawServer] = []
    server = RawServer(answering(ref, delay, extra))
    ref.append(server)
    return await server.__aenter__()


# --- pooling ---------------------------------------------------------------------------------
async def test_sequential_requests_reuse_one_connection(
    wechatpay_server: FakeWechatPay, parser: str
) -> None:
    engine = AsyncEngine(parser=parser)
    async with httpx.AsyncClient(transport=engine) as http:
        for _ in range(4):
            answer = await http.get(wechatpay_server.base_url + "v3/certificates")
            assert answer.status_code == 401  # unsigned: the fake server refuses, politely
            assert answer.http_version == "HTTP/1.1"
        assert engine.connections == 1
        assert wechatpay_server.connections == 1
    assert engine.connections == 0


async def test_idle_connections_expire(parser: str) -> None:
    server = await keep_alive_server()
    limits = httpx.Limits(max_connections=10, keepalive_expiry=0.15)
    engine = AsyncEngine(parser=parser, limits=limits)
    try:
        assert (await fetch(engine, request(server.url))).content == b"ok"
        assert (await fetch(engine, request(server.url))).content == b"ok"
        assert server.connections == 1
        await asyncio.sleep(0.3)
        assert (await fetch(engine, request(server.url))).content == b"ok"
        assert server.connections == 2  # the expired one was not reused
    finally:
        await engine.aclose()
        await server.__aexit__()


async def test_idle_connection_closed_by_the_peer_is_not_reused(parser: str) -> None:
    async def answer_then_close(peer: Peer) -> None:
        await peer.request()
        peer.answer()  # keep-alive by its headers, yet the server hangs up right after
        await peer.writer.drain()

    async with RawServer(answer_then_close) as server:
        engine = AsyncEngine(parser=parser)
        try:
            assert (await fetch(engine, request(server.url))).content == b"ok"
            await asyncio.sleep(0.05)
            assert engine.connections == 0  # dropped from the pool as soon as it closed
            assert (await fetch(engine, request(server.url))).content == b"ok"
            assert server.connections == 2
        finally:
            await engine.aclose()


async def test_pool_limit_queues_requests_and_pool_timeout() -> None:
    server = await keep_alive_server(delay=0.2)
    engine = AsyncEngine(limits=httpx.Limits(max_connections=1))
    try:
        answers = await asyncio.gather(
            *(fetch(engine, request(server.url, "POST", content=b"%d" % i)) for i in range(3))
        )
        assert [a.content for a in answers] == [b"0", b"1", b"2"]
        assert server.connections == 1  # the waiters were handed the one connection
        first = asyncio.ensure_future(fetch(engine, request(server.url)))
        await asyncio.sleep(0.02)
        with pytest.raises(httpx.PoolTimeout):
            await fetch(engine, request(server.url, extensions=quick(pool=0.05)))
        assert (await first).content == b"ok"
        assert server.requests == 4  # the timed-out one never went out
    finally:
        await engine.aclose()
        await server.__aexit__()


async def test_connection_close_is_honoured() -> None:
    server = await keep_alive_server(extra="Connection: close\r\n")
    engine = AsyncEngine()
    try:
        for _ in range(2):
            assert (await fetch(engine, request(server.url))).content == b"ok"
        assert server.connections == 2
        again = await fetch(engine, request(server.url, headers={"Connection": "close"}))
        assert again.content == b"ok" and server.connections == 3
    finally:
        await engine.aclose()
        await server.__aexit__()


# --- timeouts and errors ---------------------------------------------------------------------
async def test_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = AsyncEngine()
    with pytest.raises(httpx.ConnectError):
        await fetch(engine, request(f"http://127.0.0.1:{port}/"))
    assert engine.connections == 0 and engine._total == 0


async def test_connect_timeout_on_a_stalled_tls_handshake() -> None:
    async def silent(peer: Peer) -> None:
        await asyncio.sleep(2)  # accepts TCP, never answers the TLS ClientHello

    async with RawServer(silent) as server:
        engine = AsyncEngine()
        url = server.url.replace("http://", "https://")
        started = asyncio.get_running_loop().time()
        with pytest.raises(httpx.ConnectTimeout):
            await fetch(engine, request(url, extensions=quick(connect=0.2)))
        assert asyncio.get_running_loop().time() - started < 1.5
        assert engine._total == 0


async def test_read_timeout_closes_the_connection(parser: str) -> None:
    server = await keep_alive_server(delay=1.0)
    engine = AsyncEngine(parser=parser)
    try:
        with pytest.raises(httpx.ReadTimeout):
            await fetch(engine, request(server.url, extensions=quick(read=0.1)))
        await asyncio.sleep(0.01)
        assert engine.connections == 0  # its state is unknown: never back in the pool
    finally:
        await engine.aclose()
        await server.__aexit__()


async def test_read_timeouts_of_requests_in_flight_are_each_kept() -> None:
    """Waiting requests share one timer: a shorter deadline registered later still fires on
    time, a longer one is not cut short, and an answered request never times out."""
    slow = await keep_alive_server(delay=0.6)
    fast = await keep_alive_server()
    engine = AsyncEngine()
    loop = asyncio.get_running_loop()
    try:

        async def timed(url: str, read: float) -> tuple[str, float]:
            started = loop.time()
            try:
                await fetch(engine, request(url, extensions=quick(read=read)))
                return "answered", loop.time() - started
            except httpx.ReadTimeout:
                return "timed out", loop.time() - started

        patient = asyncio.ensure_future(timed(slow.url, 3.0))
        await asyncio.sleep(0.05)  # its 3 s deadline is now the shared timer's
        hasty = asyncio.ensure_future(timed(slow.url, 0.2))
        quick_ones = [await timed(fast.url, 0.2) for _ in range(3)]
        assert [outcome for outcome, _ in quick_ones] == ["answered"] * 3
        outcome, took = await hasty
        assert outcome == "timed out" and 0.15 <= took < 0.5
        outcome, took = await patient
        assert outcome == "answered" and took >= 0.55
        assert engine._waiting == {}
        await asyncio.sleep(0.3)  # nothing fires late for requests that are done
        assert engine._waiting == {}
    finally:
        await engine.aclose()
        await slow.__aexit__()
        await fast.__aexit__()


async def test_write_timeout_when_the_server_does_not_read() -> None:
    async def deaf(peer: Peer) -> None:
        await asyncio.sleep(3)

    async def endless() -> AsyncIterator[bytes]:
        block = b"x" * (1 << 20)
        for _ in range(512):
            yield block

    async with RawServer(deaf) as server:
        engine = AsyncEngine()
        with pytest.raises(httpx.WriteTimeout):
            await fetch(
                engine, request(server.url, "POST", content=endless(), extensions=quick(write=0.2))
            )
        await asyncio.sleep(0.01)
        assert engine.connections == 0
        await engine.aclose()


async def test_close_before_any_answer_byte(parser: str) -> None:
    async def hang_up(peer: Peer) -> None:
        await peer.request()

    async with RawServer(hang_up) as server:
        engine = AsyncEngine(parser=parser)
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await fetch(engine, request(server.url, "POST", content=b"pay"))
        assert server.connections == 1  # sent once, never again by itself
        await engine.aclose()


async def test_close_mid_answer(parser: str) -> None:
    async def truncate(peer: Peer) -> None:
        await peer.request()
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")

    async with RawServer(truncate) as server:
        engine = AsyncEngine(parser=parser)
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)) as info:
            await fetch(engine, request(server.url))
        assert not isinstance(info.value, httpx.ConnectError)  # it was sent: not "unsent"
        assert server.connections == 1
        await engine.aclose()


async def test_malformed_answer_is_a_protocol_error(parser: str) -> None:
    async def garbage(peer: Peer) -> None:
        await peer.request()
        peer.send(b"HTTP/1.1 abc\r\n\r\n")
        await asyncio.sleep(0.5)

    async with RawServer(garbage) as server:
        engine = AsyncEngine(parser=parser)
        with pytest.raises(httpx.RemoteProtocolError):
            await fetch(engine, request(server.url))
        await engine.aclose()


async def test_header_injection_is_refused() -> None:
    engine = AsyncEngine()
    with pytest.raises(httpx.LocalProtocolError):
        await fetch(engine, request("http://127.0.0.1:9/", headers={"X-A": "1\r\nX-B: 2"}))
    assert engine._total == 0  # refused before any connection


async def test_cancelled_request_does_not_return_its_connection(parser: str) -> None:
    server = await keep_alive_server(delay=3.0)  # far longer than the test waits
    engine = AsyncEngine(parser=parser)
    try:
        task = asyncio.ensure_future(fetch(engine, request(server.url)))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(200):  # the close is asynchronous; a loaded machine may take a while
            if engine.connections == 0 and engine._total == 0:
                break
            await asyncio.sleep(0.01)
        assert engine.connections == 0 and engine._total == 0
        fast = await keep_alive_server()
        assert (await fetch(engine, request(fast.url))).content == b"ok"
        await fast.__aexit__()
    finally:
        await engine.aclose()
        await server.__aexit__()


async def test_cancelled_waiter_leaves_the_pool_consistent() -> None:
    server = await keep_alive_server(delay=0.1)
    engine = AsyncEngine(limits=httpx.Limits(max_connections=1))
    try:
        busy = asyncio.ensure_future(fetch(engine, request(server.url)))
        await asyncio.sleep(0.02)
        waiting = asyncio.ensure_future(fetch(engine, request(server.url)))
        await asyncio.sleep(0.02)
        waiting.cancel()
        assert (await busy).content == b"ok"
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert (await fetch(engine, request(server.url))).content == b"ok"
        assert engine._total == 1 and server.connections == 1
    finally:
        await engine.aclose()
        await server.__aexit__()


# --- framing and streaming -------------------------------------------------------------------
async def test_chunked_close_delimited_head_and_no_content(parser: str) -> None:
    async def varied(peer: Peer) -> None:
        while True:
            got = await peer.request()
            if got is None:
                return
            line = got[0]
            if line.startswith("HEAD "):
                peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
            elif " /chunked " in line:
                peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
                await peer.writer.drain()
                await asyncio.sleep(0.02)
                peer.send(b"6\r\n world\r\n0\r\n\r\n")
            elif " /empty " in line:
                peer.send(b"HTTP/1.1 204 No Content\r\n\r\n")
            elif " /continue " in line:
                peer.send(
                    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                )
            else:
                peer.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
                await peer.writer.drain()
                return

    async with RawServer(varied) as server:
        engine = AsyncEngine(parser=parser)
        http = httpx.AsyncClient(transport=engine)
        assert (await http.get(server.url + "chunked")).content == b"hello world"
        no_content = await http.get(server.url + "empty")
        assert no_content.status_code == 204 and no_content.content == b""
        informational = await http.get(server.url + "continue")
        assert informational.status_code == 200 and informational.content == b"ok"
        assert server.connections == 1  # all reused so far
        head = await http.head(server.url)
        assert head.status_code == 200 and head.content == b""
        # h11 frames a HEAD answer itself; httptools cannot, so that connection is closed.
        assert (await http.get(server.url + "chunked")).content == b"hello world"
        assert server.connections == (1 if parser == "h11" else 2)
        final = await http.get(server.url + "close")
        assert final.content == b"until the end"
        await asyncio.sleep(0.01)
        assert engine.connections == 0
        await http.aclose()


async def test_streamed_upload_sync_and_async(parser: str) -> None:
    server = await keep_alive_server()
    engine = AsyncEngine(parser=parser)

    async def parts() -> AsyncIterator[bytes]:
        for i in range(5):
            await asyncio.sleep(0)
            yield b"part%d;" % i

    try:
        async with httpx.AsyncClient(transport=engine) as http:
            chunked = await http.post(server.url, content=parts())
            assert chunked.content == b"part0;part1;part2;part3;part4;"
            sized = await http.post(server.url, content=parts(), headers={"Content-Length": "30"})
            assert sized.content == b"part0;part1;part2;part3;part4;"
        assert server.connections == 1
    finally:
        await server.__aexit__()


async def test_large_download_is_streamed_with_bounded_buffering(parser: str) -> None:
    size = 32 << 20
    block = b"z" * (1 << 20)

    async def big(peer: Peer) -> None:
        await peer.request()
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(size // len(block)):
            peer.send(block)
            await peer.writer.drain()

    async with RawServer(big) as server:
        engine = AsyncEngine(parser=parser)
        response = await engine.handle_async_request(request(server.url))
        stream = response.stream
        received = peak = 0
        async for chunk in response.aiter_raw():
            received += len(chunk)
            await asyncio.sleep(0.005)  # a slow reader (a disk, a hash)
            peak = max(peak, stream.buffered)  # type: ignore[attr-defined]
        assert received == size
        # Without flow control the reader would fall tens of MiB behind.
        assert peak <= 2 << 20  # reading pauses at 256 KiB; one more read may land
        await engine.aclose()


# --- TLS -------------------------------------------------------------------------------------
async def test_tls_with_a_merchant_client_certificate(
    wechatpay_tls_server: FakeWechatPay, wechatpay_tls_client: Client
) -> None:
    node = wechatpay_tls_client["v2/mmpaymkttransfers/send_coupon"]
    merchant = wechatpay_tls_server.merchant
    xml = {
        "coupon_stock_id": "1717",
        "openid_count": "1",
        "partner_trade_no": "e-1",
        "openid": "o-1",
        "appid": "wxd678efh567hg6787",
        "mch_id": merchant.mchid,
    }
    answer = await node.post(security=True, xml=xml)
    assert b"SUCCESS" in answer.content
    assert wechatpay_tls_server.requests[-1].tls_client_cert is True
    pools = wechatpay_tls_client._connections.current()
    secure = pools.secure(wechatpay_tls_client.config.merchant_identity)
    assert isinstance(secure.http._transport, AsyncEngine)
    assert secure.http._transport.connections == 1
    plain = await wechatpay_tls_client.v3.certificates.get()
    assert plain.status_code == 200
    assert wechatpay_tls_server.requests[-1].tls_client_cert is False


# --- wiring: when the engine is (not) the default --------------------------------------------
async def test_the_engine_is_the_default_on_asyncio(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    answer = await wechatpay_client.v3.certificates.get()
    assert answer.status_code == 200
    pool = wechatpay_client._connections.current().plain
    assert isinstance(pool.http._transport, AsyncEngine) and pool.direct
    assert answer.elapsed.total_seconds() > 0
    assert answer.request.headers["User-Agent"].startswith("wechatpay-chain/")


async def test_proxies_and_user_transports_keep_httpx(
    wechatpay_server: FakeWechatPay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    client = wechatpay_server.client()
    pool = client._connections.current().plain
    assert not isinstance(pool.http._transport, AsyncEngine) and not pool.direct
    await client.aclose()
    monkeypatch.delenv("HTTPS_PROXY")
    mine = httpx.AsyncHTTPTransport()
    client = wechatpay_server.client(transport=mine)
    assert (await client.v3.certificates.get()).status_code == 200
    pool = client._connections.current().plain
    assert pool.http._transport is mine and not pool.direct
    await client.aclose()
    hooked: list[httpx.Request] = []

    async def hook(sent: httpx.Request) -> None:
        hooked.append(sent)

    client = wechatpay_server.client(event_hooks={"request": [hook]})
    assert (await client.v3.certificates.get()).status_code == 200
    assert len(hooked) == 1  # a client-level httpx feature: the full send path
    await client.aclose()


def test_trio_keeps_httpx_transport(wechatpay_server: FakeWechatPay) -> None:
    import trio

    client = wechatpay_server.client()

    async def main() -> None:
        assert (await client.v3.certificates.get()).status_code == 200
        pool = client._connections.current().plain
        assert isinstance(pool.http._transport, httpx.AsyncHTTPTransport) and pool.direct
        await client.aclose()

    trio.run(main)


def test_engine_switch_is_read_per_pool(
    wechatpay_server: FakeWechatPay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(PoolFactory, "use_engine", False)
    with wechatpay_server.client() as client:
        assert client.v3.certificates.get_sync().status_code == 200
        (pools,) = client._connections._pools.values()  # the sync bridge's loop
        fallback = pools.plain.http._transport
        assert isinstance(fallback, httpx.AsyncHTTPTransport) and pools.plain.direct
        assert fallback._pool._max_keepalive_connections == 10  # httpcore scans its pool
    monkeypatch.setattr(engine_module, "httptools", None)  # as if it were not installed
    assert AsyncEngine().parser == "h11"
