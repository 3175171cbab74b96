"""The benchmark front of the fake server: still checks signatures, still signs answers."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _bench_path import fastserver

from wechatpay_chain import APIError, Client, crypto
from wechatpay_chain.protocol import v3 as _v3
from wechatpay_chain.testing import FakeRequest, Reply
from wechatpay_chain.testing._http import HTTPReply

BenchmarkWechatPay = fastserver.BenchmarkWechatPay

pytestmark = pytest.mark.anyio

NATIVE = "v3/pay/transactions/native"


@pytest.fixture(scope="module")
def bench_server() -> Iterator[BenchmarkWechatPay]:
    server = BenchmarkWechatPay(keep_requests=10)

    async def later(request: FakeRequest) -> Any:
        await asyncio.sleep(0.01)  # the handler waits: the answer goes out from a task
        return {"waited": True, "echo": request.json}

    server.route("POST", NATIVE, lambda request: {"code_url": "weixin://wxpay/bz?pr=x"})
    server.route("POST", "v3/later", later)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(bench_server: BenchmarkWechatPay) -> Iterator[Client]:
    c: Client = bench_server.client()
    yield c
    c.close()


async def test_signed_answers_verify_and_repeat_within_a_second(
    bench_server: BenchmarkWechatPay, client: Client
) -> None:
    before = int(time.time())
    first = await client.v3.pay.transactions.native.post(json={"n": 1})
    second = await client.v3.pay.transactions.native.post(json={"n": 2})
    assert first.json() == {"code_url": "weixin://wxpay/bz?pr=x"}
    assert first.headers["Wechatpay-Serial"] == bench_server.signer.serial
    if int(time.time()) == before:  # same second: the signature was reused, by design
        assert first.headers["Wechatpay-Nonce"] == second.headers["Wechatpay-Nonce"]
        assert first.headers["Wechatpay-Signature"] == second.headers["Wechatpay-Signature"]
    assert bench_server.requests[-1].json == {"n": 2}


async def test_badly_signed_request_is_still_rejected(bench_server: BenchmarkWechatPay) -> None:
    other = BenchmarkWechatPay()  # another merchant's key, same mchid and serial
    options = bench_server.client_options()
    from wechatpay_chain.testing._fake import private_pem

    options["private_key"] = private_pem(other.merchant.private_key)
    async with Client(**options) as wrong:
        with pytest.raises(APIError) as caught:
            await wrong.v3.pay.transactions.native.post(json={"n": 1})
    assert caught.value.response.status_code == 401


async def test_a_handler_that_waits_is_answered(
    bench_server: BenchmarkWechatPay, client: Client
) -> None:
    answer = await client.v3.later.post(json={"i": 7})
    assert answer.json() == {"waited": True, "echo": {"i": 7}}


def test_pipelined_requests_to_a_waiting_handler_are_answered_in_order(
    bench_server: BenchmarkWechatPay,
) -> None:
    m = bench_server.merchant
    raw = b""
    for i in range(3):
        body = json.dumps({"i": i}).encode()
        timestamp, nonce = str(int(time.time())), f"nonce{i}"
        message = _v3.request_message("POST", "/v3/later", timestamp, nonce, body)
        signature = crypto.sign_sha256_rsa(message, m.private_key)
        auth = _v3.authorization(m.mchid, m.serial, timestamp, nonce, signature)
        raw += (
            f"POST /v3/later HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: {auth}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
    with socket.create_connection(("127.0.0.1", bench_server._server.port), timeout=5) as sock:
        sock.sendall(raw)  # all three at once: the first waits in a task, the others queue
        data = _read_answers(sock, 3)
    assert data.count(b"HTTP/1.1 200 OK") == 3
    echoes = [int(part.split(b"}", 1)[0]) for part in data.split(b'"echo": {"i": ')[1:]]
    assert echoes == [0, 1, 2]


async def test_faults_still_apply(bench_server: BenchmarkWechatPay, client: Client) -> None:
    bench_server.misbehave("status_500", template=NATIVE)
    with pytest.raises(APIError) as caught:
        await client.v3.pay.transactions.native.post(json={})
    assert caught.value.response.status_code == 500
    bench_server.misbehave("tamper_signature", template=NATIVE)
    with pytest.raises(Exception, match="does not verify"):
        await client.v3.pay.transactions.native.post(json={})
    bench_server.misbehave("close_connection", template=NATIVE)
    with pytest.raises(httpx.TransportError):
        await client.v3.pay.transactions.native.post(json={})
    ok = await client.v3.pay.transactions.native.post(json={})
    assert ok.status_code == 200


def test_pipelined_requests_and_bad_requests_on_a_raw_socket(
    bench_server: BenchmarkWechatPay,
) -> None:
    port = bench_server._server.port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        # Two unsigned requests in one write: two 401 answers, in order, connection kept.
        one = b"GET /v3/a HTTP/1.1\r\nHost: x\r\n\r\n"
        sock.sendall(one + one)
        data = _read_answers(sock, 2)
        assert data.count(b"HTTP/1.1 401 Unauthorized") == 2
        sock.sendall(b"NONSENSE\r\n\r\n")
        rest = _read_until_closed(sock)
        assert rest.startswith(b"HTTP/1.1 400 Bad Request")
        assert b"Connection: close" in rest


def test_streamed_answers_are_refused_clearly(bench_server: BenchmarkWechatPay) -> None:
    bench_server.route("GET", "v3/plain", lambda r: Reply(200, body=b'{"x":1}'))
    bench_server.route("GET", "v3/stream", lambda r: HTTPReply(200, stream=[b"x"], length=1))
    with bench_server.client() as c:
        assert c.v3.plain.get_sync().json() == {"x": 1}
        with pytest.raises(APIError) as caught:
            c.v3.stream.get_sync()
    assert caught.value.response.status_code == 501
    assert bench_server.requests[-1].path == "/v3/stream"


def _read_answers(sock: socket.socket, count: int) -> bytes:
    data = b""
    while data.count(b"HTTP/1.1 ") < count or not data.endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


async def test_static_answers_are_signed_and_requests_still_checked(
    bench_server: BenchmarkWechatPay, client: Client
) -> None:
    bench_server.static("POST", "v3/static/order", {"code_url": "weixin://static", "n": "订单"})
    recorded = len(bench_server.requests)
    answer = await client.v3.static.order.post(json={"x": 1})  # verified by the client
    assert answer.json() == {"code_url": "weixin://static", "n": "订单"}
    assert answer.headers["Request-ID"].startswith("bench-")
    assert len(bench_server.requests) == recorded  # the short path records nothing
    # A request signed with another key is refused there too.
    stranger = bench_server.client(private_key=crypto.load_private_key(_other_key()))
    try:
        with pytest.raises(APIError) as caught:
            await stranger.v3.static.order.post(json={"x": 1})
        assert caught.value.response.status_code == 401
        assert caught.value.code == "SIGN_ERROR"
    finally:
        await stranger.aclose()
    # Only the exact method and target take the short path.
    with pytest.raises(APIError) as missing:
        await client.v3.static.order.get()
    assert missing.value.response.status_code == 404


def _other_key() -> bytes:
    from wechatpay_chain.testing._fake import generate_key, private_pem

    return private_pem(generate_key())


def test_oversized_and_upgrade_requests_are_refused(
    bench_server: BenchmarkWechatPay, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fastserver = fastserver

    if _fastserver.httptools is None:
        pytest.fail("httptools is a runtime dependency and should be installed")
    monkeypatch.setattr(_fastserver, "_MAX_BODY", 100)
    port = bench_server._server.port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /v3/a HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n" + b"x" * 500)
        assert _read_until_closed(sock).startswith(b"HTTP/1.1 413 ")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"GET /v3/a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        )
        assert _read_until_closed(sock).startswith(b"HTTP/1.1 501 ")
