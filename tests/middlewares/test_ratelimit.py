"""Client-side rate limits: per-endpoint pace and calls in flight, on asyncio and trio."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from wechatpay_chain import Client, InvalidArgumentError, RateLimit, RetryPolicy
from wechatpay_chain.testing import FakeRequest, FakeWechatPay

pytestmark = pytest.mark.anyio

TEMPLATE = "v3/marketing/favor/users/{openid}/coupons"
SLOW = "v3/custom/slow"


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(round(seconds, 6))
            self.now += seconds
        await anyio.lowlevel.checkpoint()


def coupon(server: FakeWechatPay, no: str) -> dict[str, str]:
    return {
        "stock_id": "9856000",
        "out_request_no": no,
        "appid": "wxd678efh567hg6787",
        "stock_creator_mchid": server.merchant.mchid,
    }


def paced(clock: FakeClock, rates: dict[str, float] | None = None, **options: Any) -> RateLimit:
    return RateLimit(rates, clock=clock, sleep=clock.sleep, **options)


async def test_endpoint_rate_paces_calls_on_a_fake_clock(wechatpay_server: FakeWechatPay) -> None:
    clock = FakeClock()
    limit = paced(clock, {f"POST {TEMPLATE}": 10})
    async with wechatpay_server.client(rate_limit=limit) as client:
        for i in range(3):
            await client[TEMPLATE].post(openid="o-1", json=coupon(wechatpay_server, str(i)))
        # another method of the same template is another endpoint: not paced
        await client[TEMPLATE].get(openid="o-1", query={"appid": "wx1"})
    assert clock.sleeps == [0.1, 0.1]
    assert len(wechatpay_server.requests) == 4


async def test_a_template_key_shares_one_budget_across_methods(
    wechatpay_server: FakeWechatPay,
) -> None:
    clock = FakeClock()
    async with wechatpay_server.client(rate_limit=paced(clock, {TEMPLATE: 4})) as client:
        await client[TEMPLATE].post(openid="o-1", json=coupon(wechatpay_server, "a"))
        await client[TEMPLATE].get(openid="o-1", query={"appid": "wx1"})
    assert clock.sleeps == [0.25]


async def test_default_rate_gives_each_endpoint_its_own_budget(
    wechatpay_server: FakeWechatPay,
) -> None:
    clock = FakeClock()
    wechatpay_server.route("GET", "v3/other", lambda r: {})
    async with wechatpay_server.client(rate_limit=paced(clock, default=2)) as client:
        await client[TEMPLATE].get(openid="o-1", query={"appid": "wx1"})
        await client.v3.other.get()
        await client[TEMPLATE].get(openid="o-1", query={"appid": "wx1"})
    assert clock.sleeps == [0.5]


async def test_burst_goes_at_once_then_the_pace_applies(wechatpay_server: FakeWechatPay) -> None:
    clock = FakeClock()
    limit = paced(clock, {TEMPLATE: 10}, burst=3)
    async with wechatpay_server.client(rate_limit=limit) as client:
        for _ in range(5):
            await client[TEMPLATE].get(openid="o-1", query={"appid": "wx1"})
    assert clock.sleeps == [0.1, 0.1]


async def test_real_clock_pace_holds_for_concurrent_tasks(wechatpay_server: FakeWechatPay) -> None:
    limit = RateLimit({TEMPLATE: 50})
    async with wechatpay_server.client(rate_limit=limit) as client:
        started = time.monotonic()
        async with anyio.create_task_group() as group:
            for _ in range(16):
                group.start_soon(lambda: client[TEMPLATE].get(openid="o-1", query={"appid": "wx1"}))
        elapsed = time.monotonic() - started
    assert elapsed >= 15 / 50 * 0.95
    assert len(wechatpay_server.requests) == 16


def watch_concurrency(server: FakeWechatPay) -> dict[str, int]:
    seen = {"now": 0, "max": 0}

    async def slow(request: FakeRequest) -> dict[str, Any]:
        seen["now"] += 1
        seen["max"] = max(seen["max"], seen["now"])
        await asyncio.sleep(0.03)  # the fake server runs on its own asyncio loop
        seen["now"] -= 1
        return {}

    server.route("GET", SLOW, slow)
    return seen


async def test_concurrency_limit_bounds_calls_in_flight_across_derived_clients(
    wechatpay_server: FakeWechatPay,
) -> None:
    seen = watch_concurrency(wechatpay_server)
    async with wechatpay_server.client(rate_limit=RateLimit(concurrency=3)) as client:
        derived = client.without("verifier")
        async with anyio.create_task_group() as group:
            for i in range(12):
                group.start_soon((client if i % 2 else derived).chain(SLOW).get)
    assert seen["max"] == 3
    assert len(wechatpay_server.requests) == 12


async def test_without_a_limit_calls_overlap(wechatpay_server: FakeWechatPay) -> None:
    seen = watch_concurrency(wechatpay_server)
    async with wechatpay_server.client() as client:
        async with anyio.create_task_group() as group:
            for _ in range(6):
                group.start_soon(client.chain(SLOW).get)
    assert seen["max"] > 3  # so the bound above is the limiter's doing


def test_one_limit_paces_every_event_loop_and_thread(wechatpay_server: FakeWechatPay) -> None:
    clock = FakeClock()
    with wechatpay_server.client(rate_limit=paced(clock, {TEMPLATE: 10})) as client:
        client[TEMPLATE].get_sync(openid="o-1", query={"appid": "wx1"})
        client[TEMPLATE].get_sync(openid="o-1", query={"appid": "wx1"})

        async def from_another_loop() -> None:
            await client[TEMPLATE].get(openid="o-1", query={"appid": "wx1"})
            await client.aclose()

        anyio.run(from_another_loop)
    assert clock.sleeps == [0.1, 0.1]


def test_limiter_sits_inside_retry_and_above_the_signer(wechatpay_server: FakeWechatPay) -> None:
    client: Client = wechatpay_server.client(retry=RetryPolicy(), rate_limit=RateLimit(default=5))
    assert client.middlewares.names == (
        "template",
        "transformer",
        "retry",
        "limiter",
        "signer",
        "verifier",
    )
    alone: Client = wechatpay_server.client(rate_limit=RateLimit(default=5), log_requests=True)
    assert alone.middlewares.names == (
        "template",
        "transformer",
        "limiter",
        "logger",
        "signer",
        "verifier",
    )


@pytest.mark.parametrize(
    ("args", "options", "message"),
    [
        ({"v3/x": 0}, {}, "must be a number > 0"),
        ({"FETCH v3/x y": 1}, {}, "'TEMPLATE' or 'METHOD TEMPLATE'"),
        (None, {"concurrency": 0}, "concurrency must be an int >= 1"),
        (None, {"burst": 0}, "burst must be an int >= 1"),
        (None, {"default": -1}, "default must be a number > 0"),
    ],
)
def test_bad_limits_are_refused(args: Any, options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        RateLimit(args, **options)


def test_rate_limit_must_be_a_rate_limit(wechatpay_server: FakeWechatPay) -> None:
    with pytest.raises(InvalidArgumentError, match="rate_limit must be a RateLimit"):
        wechatpay_server.client(rate_limit={"v3/x": 1})
