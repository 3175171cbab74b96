"""Signing on spare cores while several requests are in flight (``parallel_signing``)."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import anyio
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from wechatpay_chain import Client, InvalidArgumentError, crypto
from wechatpay_chain.testing import FakeWechatPay
from wechatpay_chain.transport.parallel import SigningThreads, signing_threads

pytestmark = pytest.mark.anyio

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@pytest.fixture(autouse=True)
def native(wechatpay_server: FakeWechatPay) -> None:
    wechatpay_server.route(
        "POST", "v3/pay/transactions/native", lambda request: {"code_url": "weixin://wxpay/x"}
    )


def order(no: str) -> dict[str, Any]:
    return {"appid": "wxd678efh567hg6787", "out_trade_no": no, "amount": {"total": 1}}


async def send_many(client: Client, count: int) -> list[int]:
    statuses: list[int] = []

    async def one(i: int) -> None:
        response = await client.v3.pay.transactions.native.post(json=order(f"p-{i}"))
        statuses.append(response.status_code)

    async with anyio.create_task_group() as tg:
        for i in range(count):
            tg.start_soon(one, i)
    return statuses


def signed_so_far() -> int:
    threads = signing_threads()
    return 0 if threads is None else threads.signed


async def test_concurrent_requests_are_signed_off_the_loop_and_accepted(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, anyio_backend: str
) -> None:
    before = signed_so_far()
    statuses = await send_many(wechatpay_client, 24)
    # The fake server checked every signature: all 24 were accepted.
    assert statuses == [200] * 24
    native = [r for r in wechatpay_server.requests if r.path.endswith("/native")]
    assert len(native) == 24
    assert len({r.headers["Authorization"] for r in native}) == 24
    offloaded = signed_so_far() - before
    if anyio_backend == "asyncio" and CORES and CORES > 1:
        assert offloaded > 0, "with several cores and 24 in flight, workers should sign"
    else:  # trio, or one usable core: everything is signed inline
        assert offloaded == 0


async def test_one_request_at_a_time_is_signed_inline(wechatpay_client: Client) -> None:
    before = signed_so_far()
    for i in range(5):
        response = await wechatpay_client.v3.pay.transactions.native.post(json=order(f"s-{i}"))
        assert response.status_code == 200
    assert signed_so_far() == before


async def test_a_few_requests_in_flight_are_signed_inline(wechatpay_client: Client) -> None:
    before = signed_so_far()
    for _ in range(3):  # two at a time: below PARALLEL_FROM, a thread would only add latency
        assert await send_many(wechatpay_client, 2) == [200, 200]
    assert signed_so_far() == before


async def test_parallel_signing_can_be_turned_off(wechatpay_server: FakeWechatPay) -> None:
    client: Client = wechatpay_server.client(parallel_signing=False)
    try:
        before = signed_so_far()
        assert await send_many(client, 16) == [200] * 16
        assert signed_so_far() == before
        merchant = client.for_merchant(
            mchid=wechatpay_server.merchant.mchid,
            serial=wechatpay_server.merchant.serial,
            private_key=wechatpay_server.merchant.private_key,
            certs=wechatpay_server.certs(),
        )
        assert await send_many(merchant, 8) == [200] * 8
        assert signed_so_far() == before
    finally:
        await client.aclose()


def test_parallel_signing_must_be_a_bool(wechatpay_server: FakeWechatPay) -> None:
    with pytest.raises(InvalidArgumentError, match="parallel_signing must be True or False"):
        wechatpay_server.client(parallel_signing="yes")


async def test_in_flight_count_returns_to_zero_after_failures(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, anyio_backend: str
) -> None:
    if anyio_backend != "asyncio":
        return  # the count is kept for asyncio loops only; trio signs inline (test above)
    wechatpay_server.misbehave("tamper_body", times=5)
    results = await asyncio.gather(
        *(
            wechatpay_client.v3.pay.transactions.native.post(json=order(f"f-{i}"))
            for i in range(10)
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Exception) for r in results) == 5
    threads = signing_threads()
    if threads is not None:
        assert threads.load(asyncio.get_running_loop()).inflight == 0


async def test_workers_hand_back_valid_signatures_and_errors(anyio_backend: str) -> None:
    if anyio_backend != "asyncio":
        return  # the workers deliver to asyncio loops only
    key = crypto.load_private_key(FakeWechatPay().merchant.private_key)
    threads = SigningThreads(2)
    load = threads.load(asyncio.get_running_loop())
    messages = [f"POST\n/v3/x\n{i}\nnonce\n{{}}\n".encode() for i in range(20)]
    signatures = await asyncio.gather(*(threads.sign(load, key, m) for m in messages))
    public = key.public_key()
    for message, signature in zip(messages, signatures, strict=True):
        assert crypto.verify_sha256_rsa(message, signature, public)
    assert threads.signed == 20
    assert {t.name for t in threading.enumerate()} >= {
        "wechatpay-chain-signer-0",
        "wechatpay-chain-signer-1",
    }

    class Broken:
        def sign(self, message: bytes, pad: padding.PKCS1v15, algorithm: hashes.SHA256) -> bytes:
            raise ValueError("the HSM is unplugged")

    with pytest.raises(ValueError, match="unplugged"):
        await threads.sign(load, Broken(), b"m")  # type: ignore[arg-type]


async def test_a_cancelled_request_leaves_the_workers_healthy(anyio_backend: str) -> None:
    if anyio_backend != "asyncio":
        return
    key = crypto.load_private_key(FakeWechatPay().merchant.private_key)
    threads = SigningThreads(1)
    load = threads.load(asyncio.get_running_loop())
    waiting = [asyncio.ensure_future(threads.sign(load, key, b"m%d" % i)) for i in range(8)]
    await asyncio.sleep(0)
    for task in waiting[:4]:
        task.cancel()
    done = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in done[:4])
    assert all(isinstance(r, str) for r in done[4:])
    assert crypto.verify_sha256_rsa(b"m7", done[7], key.public_key())  # type: ignore[arg-type]


def test_closed_loops_are_forgotten() -> None:
    threads = SigningThreads(1)
    for _ in range(5):
        loop = asyncio.new_event_loop()
        threads.load(loop)
        loop.close()
    fresh = asyncio.new_event_loop()
    try:
        threads.load(fresh)
        assert list(threads._loads) == [fresh]
    finally:
        fresh.close()


def test_workers_behind_means_two_waiting_signatures_per_worker() -> None:
    threads = SigningThreads(2)  # not started: queued jobs stay queued
    loop = asyncio.new_event_loop()
    try:
        load = threads.load(loop)
        for expected in (False, False, False, False, True):
            assert threads.behind() is expected
            threads._jobs.put((load, loop.create_future(), None, b""))
    finally:
        loop.close()
