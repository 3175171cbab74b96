"""Answers the SDK bounds whatever the transport: compressed, oversized, trickled.

Over a raw loopback server (tests/_raw_server.py) whose answers are signed with the fake
server's platform key, so only what is under test can fail; on asyncio (the engine) and
trio (httpx's transport). The decoder's edge cases are checked directly at the end.
"""

from __future__ import annotations

import gzip
import json
import time
import zlib
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from _raw_server import Peer, RawServer, Received, serve_forever

from wechatpay_chain import Client, DeadlineExceeded, InvalidArgumentError, VerificationError
from wechatpay_chain.testing import FakeWechatPay
from wechatpay_chain.transport.decoding import STEP, decoded, read_answer

pytestmark = pytest.mark.anyio

ANSWER = json.dumps({"code": "SUCCESS", "data": "x" * 2000}).encode()


def signed_answer(
    server: FakeWechatPay, body: bytes, wire: bytes | None = None, coding: str = ""
) -> bytes:
    """An HTTP answer signed over ``body``, carrying ``wire`` (the coded body) if given."""
    sent = body if wire is None else wire
    headers = server.sign_answer(body)
    if coding:
        headers.append(("Content-Encoding", coding))
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % len(sent)
        + head.encode()
        + b"\r\n"
        + sent
    )


def always(answer: bytes) -> Any:
    def respond(peer: Peer, got: Received) -> None:
        peer.send(answer)

    return serve_forever(respond)


@pytest.fixture
def raw_client(wechatpay_server: FakeWechatPay) -> Iterator[Any]:
    made: list[Client] = []

    def make(server: RawServer, **options: Any) -> Client:
        client: Client = wechatpay_server.client(base_url=server.url, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


# --- 10. content codings ----------------------------------------------------------------------
def _raw_deflate(data: bytes) -> bytes:
    # zlib.compress() takes wbits= only from Python 3.11.
    packer = zlib.compressobj(wbits=-15)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("coding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", _raw_deflate),  # raw deflate, as httpx takes
    ],
)
async def test_a_compressed_answer_is_decoded_and_verified_over_its_content(
    wechatpay_server: FakeWechatPay, raw_client: Any, coding: str, compress: Any
) -> None:
    answer = signed_answer(wechatpay_server, ANSWER, compress(ANSWER), coding)
    with RawServer(always(answer)) as server:
        client = raw_client(server)
        response = await client.v3.certificates.get()
        assert response.content == ANSWER and response.json()["code"] == "SUCCESS"
        assert server.requests[0].headers["accept-encoding"] == "gzip, deflate"


@pytest.mark.parametrize("coding", ["br", "zstd", "gzip, gzip", "compress"])
async def test_an_answer_in_a_coding_we_did_not_ask_for_is_refused(
    wechatpay_server: FakeWechatPay, raw_client: Any, coding: str
) -> None:
    answer = signed_answer(wechatpay_server, ANSWER, b"\x0b\x01\x80whatever", coding)
    with RawServer(always(answer)) as server:
        client = raw_client(server)
        with pytest.raises(httpx.DecodingError, match="decodes gzip, deflate only"):
            await client.v3.certificates.get()
        assert len(server.requests) == 1


# --- 9. decompression bombs and large answers -------------------------------------------------
BOMB = gzip.compress(b"\0" * (64 << 20), compresslevel=9)


async def test_a_decompression_bomb_is_refused_before_it_is_inflated(
    wechatpay_server: FakeWechatPay, raw_client: Any
) -> None:
    assert len(BOMB) < 100_000
    answer = signed_answer(wechatpay_server, b"not what was compressed", BOMB, "gzip")
    with RawServer(always(answer)) as server:
        client = raw_client(server)
        started = time.monotonic()
        with pytest.raises(httpx.DecodingError, match="larger than 16777216 bytes"):
            await client.v3.certificates.get()
        assert time.monotonic() - started < 5  # not 64 MiB inflated, then checked


@pytest.mark.parametrize("coded", [False, True])
async def test_max_answer_size_is_exact(
    wechatpay_server: FakeWechatPay, raw_client: Any, coded: bool
) -> None:
    wire = gzip.compress(ANSWER) if coded else None
    answer = signed_answer(wechatpay_server, ANSWER, wire, "gzip" if coded else "")
    with RawServer(always(answer)) as server:
        small = raw_client(server, max_answer_size=len(ANSWER) - 1)
        with pytest.raises(httpx.DecodingError, match="larger than"):
            await small.v3.certificates.get()
        enough = raw_client(server, max_answer_size=len(ANSWER))
        assert (await enough.v3.certificates.get()).content == ANSWER


def test_max_answer_size_is_checked(wechatpay_server: FakeWechatPay) -> None:
    for bad in (0, -1, 1.5, True, "1"):
        with pytest.raises(InvalidArgumentError, match="max_answer_size"):
            wechatpay_server.client(max_answer_size=bad)


# --- 11. a total deadline ---------------------------------------------------------------------
def trickling(wechatpay_server: FakeWechatPay) -> Any:
    answer = signed_answer(wechatpay_server, ANSWER)

    def respond(peer: Peer, got: Received) -> None:
        head, _, body = answer.partition(b"\r\n\r\n")
        peer.send(head + b"\r\n\r\n")
        for i in range(len(body)):  # a byte every 50 ms: no read ever times out
            peer.send(body[i : i + 1])
            time.sleep(0.05)

    return serve_forever(respond)


async def test_a_per_call_deadline_ends_a_trickling_answer(
    wechatpay_server: FakeWechatPay, raw_client: Any
) -> None:
    with RawServer(trickling(wechatpay_server)) as server:
        client = raw_client(server, timeout=httpx.Timeout(5.0, read=1.0))
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded) as info:
            await client.v3.certificates.get(deadline=0.4)
        took = time.monotonic() - started
        assert isinstance(info.value, httpx.TimeoutException)
        assert 0.35 <= took < 2.0
        assert len(server.requests) == 1  # sent once


async def test_a_client_deadline_applies_to_every_call_and_a_call_may_override_it(
    wechatpay_server: FakeWechatPay, raw_client: Any
) -> None:
    with RawServer(trickling(wechatpay_server)) as server:
        client = raw_client(server, deadline=0.3)
        with pytest.raises(DeadlineExceeded, match=r"0\.3 s deadline"):
            await client.v3.certificates.get()
    fast = signed_answer(wechatpay_server, ANSWER)
    with RawServer(always(fast)) as server:
        client = raw_client(server, deadline=0.3)
        assert (await client.v3.certificates.get(deadline=5)).content == ANSWER
        assert (await client.v3.certificates.get()).content == ANSWER  # within 0.3 s


def test_a_deadline_holds_for_blocking_calls(
    wechatpay_server: FakeWechatPay, raw_client: Any
) -> None:
    with RawServer(trickling(wechatpay_server)) as server:
        client = raw_client(server)
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            client.v3.certificates.get_sync(deadline=0.3)
        assert time.monotonic() - started < 2.0


def test_deadline_values_are_checked(wechatpay_server: FakeWechatPay) -> None:
    for bad in (0, -1, "1", True):
        with pytest.raises(InvalidArgumentError, match="deadline"):
            wechatpay_server.client(deadline=bad)
    client = wechatpay_server.client()
    with pytest.raises(InvalidArgumentError, match="deadline"):
        client.v3.certificates.get_sync(deadline=0)
    client.close()


# --- the decoder itself -----------------------------------------------------------------------
def streamed(body: bytes, coding: str = "", pieces: int = 7) -> httpx.Response:
    size = max(1, len(body) // pieces)
    parts = [body[i : i + size] for i in range(0, len(body), size)]

    class Stream(httpx.AsyncByteStream):
        async def __aiter__(self) -> Any:
            for part in parts:
                await anyio.sleep(0)
                yield part

    headers = {"Content-Encoding": coding} if coding else {}
    return httpx.Response(200, headers=headers, stream=Stream())


async def test_decoding_refuses_corrupt_truncated_and_padded_streams() -> None:
    coded = gzip.compress(ANSWER)
    for wire in (coded[:-10], coded + b"extra", b"\x1f\x8bnot gzip at all"):
        with pytest.raises(httpx.DecodingError):
            await read_answer(streamed(wire, "gzip"), 1 << 20)
    response = streamed(gzip.compress(ANSWER), "x-gzip, identity")
    await read_answer(response, 1 << 20)
    assert response.content == ANSWER


async def test_a_streamed_download_is_inflated_a_step_at_a_time() -> None:
    response = streamed(BOMB, "gzip", pieces=3)
    total = biggest = 0
    async for piece in decoded(response):
        total += len(piece)
        biggest = max(biggest, len(piece))
    assert total == 64 << 20
    assert biggest <= STEP  # never the whole 64 MiB at once


async def test_a_signed_answer_does_not_verify_against_compressed_bytes(
    wechatpay_server: FakeWechatPay, raw_client: Any
) -> None:
    """The signature covers the content; signed over the wire bytes instead, it fails."""
    wire = gzip.compress(ANSWER)
    answer = signed_answer(wechatpay_server, wire, wire, "gzip")
    with RawServer(always(answer)) as server:
        client = raw_client(server)
        with pytest.raises(VerificationError):
            await client.v3.certificates.get()


# --- a stray answer after an answer, on every transport ---------------------------------------
async def test_a_stray_signed_answer_is_never_handed_to_the_next_call(
    wechatpay_server: FakeWechatPay, raw_client: Any
) -> None:
    """On asyncio the engine closes the connection; on trio (httpx's transport) the SDK's
    guard retires it (httpcore would read the stray bytes as the next answer)."""
    first = json.dumps({"answer": "first"}).encode()
    stray = json.dumps({"answer": "stray"}).encode()
    fresh = json.dumps({"answer": "fresh"}).encode()
    answers = [
        signed_answer(wechatpay_server, first) + signed_answer(wechatpay_server, stray),
        signed_answer(wechatpay_server, fresh),
    ]

    def respond(peer: Peer, got: Received) -> None:
        peer.send(answers[min(len(peer.server.requests), 2) - 1])

    with RawServer(serve_forever(respond)) as server:
        client = raw_client(server)
        assert (await client.v3.certificates.get()).json() == {"answer": "first"}
        assert (await client.v3.certificates.get()).json() == {"answer": "fresh"}
        assert server.connections == 2 and len(server.requests) == 2


async def test_an_answer_a_custom_transport_already_read_is_measured() -> None:
    read = httpx.Response(200, content=ANSWER)
    await read_answer(read, len(ANSWER))
    assert read.content == ANSWER
    with pytest.raises(httpx.DecodingError, match="larger than"):
        await read_answer(httpx.Response(200, content=ANSWER), len(ANSWER) - 1)
    assert [piece async for piece in decoded(httpx.Response(200, content=ANSWER))] == [ANSWER]
