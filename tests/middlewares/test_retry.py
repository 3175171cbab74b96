"""The retry policy against the fake server's fault modes, with backoff on a fake clock."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest

from wechatpay_chain import APIError, Client, InvalidArgumentError, RetryPolicy, VerificationError
from wechatpay_chain.middlewares import Request
from wechatpay_chain.middlewares.pipeline import Handler
from wechatpay_chain.protocol.v3 import parse_authorization
from wechatpay_chain.testing import FakeWechatPay, Reply

pytestmark = pytest.mark.anyio

TEMPLATE = "v3/marketing/favor/users/{openid}/coupons"
PLAIN = "v3/custom/no-request-number"
V2_QUERY = "v2/mmpaymkttransfers/query_coupon_stock"


class FakeClock:
    """A clock that only moves when the policy sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()


def policy(clock: FakeClock, **options: Any) -> RetryPolicy:
    return RetryPolicy(jitter=0.0, sleep=clock.sleep, clock=clock, **options)


def coupon(server: FakeWechatPay, no: str = "r-1") -> dict[str, str]:
    return {
        "stock_id": "9856000",
        "out_request_no": no,
        "appid": "wxd678efh567hg6787",
        "stock_creator_mchid": server.merchant.mchid,
    }


def sent_to(server: FakeWechatPay, template: str) -> list[Any]:
    return [r for r in server.requests if r.template == template]


def dead_url() -> str:
    """A loopback URL where nothing listens: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


async def test_5xx_then_success_is_retried_and_each_attempt_signed_afresh(
    wechatpay_server: FakeWechatPay,
) -> None:
    clock = FakeClock()
    wechatpay_server.misbehave("status_500", times=2)
    async with wechatpay_server.client(retry=policy(clock)) as client:
        resp = await client[TEMPLATE].post(openid="o-1", json=coupon(wechatpay_server))
    assert resp.status_code == 200
    attempts = sent_to(wechatpay_server, TEMPLATE)
    assert len(attempts) == 3
    nonces = {parse_authorization(r.headers["Authorization"])["nonce_str"] for r in attempts}
    assert len(nonces) == 3
    assert clock.sleeps == [0.5, 1.0]
    assert len(wechatpay_server.state["coupons"]["o-1"]) == 1


async def test_429_backs_off_exponentially_on_a_fake_clock(
    wechatpay_server: FakeWechatPay,
) -> None:
    clock = FakeClock()
    wechatpay_server.misbehave("status_429", times=3)
    async with wechatpay_server.client(retry=policy(clock, backoff=0.25)) as client:
        resp = await client[TEMPLATE].get(openid="o-1", query={"appid": "wx1"})
    assert resp.status_code == 200
    assert clock.sleeps == [0.25, 0.5, 1.0]
    assert len(sent_to(wechatpay_server, TEMPLATE)) == 4


def test_backoff_is_capped_and_jittered_downwards() -> None:
    draws = iter([0.0, 1.0, 0.5, 0.0])
    p = RetryPolicy(backoff=1.0, max_backoff=3.0, jitter=0.5, random=lambda: next(draws))
    assert [p.delay(1), p.delay(2), p.delay(3), p.delay(10)] == [1.0, 1.0, 2.25, 3.0]


async def test_retry_after_is_honoured_up_to_max_backoff(wechatpay_server: FakeWechatPay) -> None:
    clock = FakeClock()
    answers = iter([Reply(429, json={"code": "FREQUENCY_LIMITED"}, headers={"Retry-After": "3"})])
    wechatpay_server.route("GET", "v3/limited", lambda r: next(answers, {"ok": True}))
    async with wechatpay_server.client(retry=policy(clock, max_backoff=2.0)) as client:
        resp = await client.v3.limited.get()
    assert resp.json() == {"ok": True}
    assert clock.sleeps == [2.0]


async def test_deadline_stops_retrying_and_the_last_error_is_raised(
    wechatpay_server: FakeWechatPay,
) -> None:
    clock = FakeClock()
    wechatpay_server.misbehave("status_429", times=5)
    async with wechatpay_server.client(retry=policy(clock, deadline=1.2)) as client:
        with pytest.raises(APIError) as info:
            await client[TEMPLATE].get(openid="o-1", query={"appid": "wx1"})
    assert (info.value.status_code, info.value.code) == (429, "FREQUENCY_LIMITED")
    assert clock.sleeps == [0.5]  # the next wait (1.0) would end past the deadline
    assert len(sent_to(wechatpay_server, TEMPLATE)) == 2


async def test_attempts_are_bounded(wechatpay_server: FakeWechatPay) -> None:
    clock = FakeClock()
    wechatpay_server.misbehave("status_500", times=10)
    async with wechatpay_server.client(retry=policy(clock, max_attempts=3)) as client:
        with pytest.raises(APIError, match="SYSTEM_ERROR"):
            await client[TEMPLATE].post(openid="o-1", json=coupon(wechatpay_server))
    assert len(sent_to(wechatpay_server, TEMPLATE)) == 3


async def test_connection_reset_mid_answer_is_retried_and_deduplicated(
    wechatpay_server: FakeWechatPay,
) -> None:
    clock = FakeClock()
    wechatpay_server.misbehave("reset_mid_answer")
    async with wechatpay_server.client(retry=policy(clock)) as client:
        resp = await client[TEMPLATE].post(openid="o-1", json=coupon(wechatpay_server))
    attempts = sent_to(wechatpay_server, TEMPLATE)
    assert len(attempts) == 2
    assert attempts[0].json["out_request_no"] == attempts[1].json["out_request_no"]
    # the server handled both; the out_request_no made the second one a repeat
    [only] = wechatpay_server.state["coupons"]["o-1"]
    assert resp.json()["coupon_id"] == only["coupon_id"]


async def test_reset_mid_answer_surfaces_as_a_transport_error_without_a_policy(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    wechatpay_server.misbehave("reset_mid_answer")
    with pytest.raises(httpx.TransportError):
        await wechatpay_client[TEMPLATE].post(openid="o-1", json=coupon(wechatpay_server))
    assert len(sent_to(wechatpay_server, TEMPLATE)) == 1


@pytest.mark.parametrize("fault", ["status_500", "status_429", "reset_mid_answer", "slow"])
async def test_post_without_idempotency_is_never_retried(
    wechatpay_server: FakeWechatPay, fault: str
) -> None:
    clock = FakeClock()
    wechatpay_server.route("POST", PLAIN, lambda r: {"done": True})
    wechatpay_server.misbehave(fault, delay=0.5)
    async with wechatpay_server.client(retry=policy(clock)) as client:
        with pytest.raises((APIError, httpx.TransportError)) as info:
            await client.chain(PLAIN).post(json={"amount": 1}, timeout=0.2)
    assert len(sent_to(wechatpay_server, PLAIN)) == 1
    assert clock.sleeps == []
    if isinstance(info.value, httpx.TransportError) and hasattr(info.value, "__notes__"):
        assert "not known to be idempotent" in info.value.__notes__[-1]


async def test_explicit_idempotent_flag_decides(wechatpay_server: FakeWechatPay) -> None:
    clock = FakeClock()
    wechatpay_server.route("POST", PLAIN, lambda r: {"done": True})
    async with wechatpay_server.client(retry=policy(clock)) as client:
        wechatpay_server.misbehave("status_500")
        resp = await client.chain(PLAIN).post(json={"amount": 1}, idempotent=True)
        assert resp.json() == {"done": True}
        assert len(sent_to(wechatpay_server, PLAIN)) == 2
        wechatpay_server.misbehave("status_500")
        with pytest.raises(APIError):
            await client[TEMPLATE].post(
                openid="o-1", json=coupon(wechatpay_server), idempotent=False
            )
    assert len(sent_to(wechatpay_server, TEMPLATE)) == 1


async def test_get_is_retried_after_a_read_timeout(wechatpay_server: FakeWechatPay) -> None:
    clock = FakeClock()
    wechatpay_server.misbehave("slow", delay=0.5)
    async with wechatpay_server.client(retry=policy(clock)) as client:
        resp = await client[TEMPLATE].get(openid="o-1", query={"appid": "wx1"}, timeout=0.2)
    assert resp.status_code == 200
    assert len(sent_to(wechatpay_server, TEMPLATE)) == 2


async def test_streamed_body_is_not_retried(wechatpay_server: FakeWechatPay) -> None:
    clock = FakeClock()
    wechatpay_server.route("POST", PLAIN, lambda r: {"done": True})
    wechatpay_server.misbehave("status_500")

    async def body() -> AsyncIterator[bytes]:
        yield b'{"amount":1}'

    async def sign_streamed_bytes(request: Request, call_next: Handler) -> httpx.Response:
        request.state["signed_body"] = b'{"amount":1}'  # as uploads do for their meta part
        return await call_next(request)

    async with wechatpay_server.client(retry=policy(clock)) as base:
        client = base.insert("meta", sign_streamed_bytes, before="signer")
        with pytest.raises(APIError) as info:
            await client.chain(PLAIN).post(
                body=body(), headers={"Content-Type": "application/json"}, idempotent=True
            )
    assert info.value.code == "SYSTEM_ERROR"
    assert len(sent_to(wechatpay_server, PLAIN)) == 1
    assert clock.sleeps == []


async def test_failed_verification_is_never_retried(wechatpay_server: FakeWechatPay) -> None:
    clock = FakeClock()
    wechatpay_server.misbehave("tamper_signature")
    async with wechatpay_server.client(retry=policy(clock)) as client:
        with pytest.raises(VerificationError):
            await client[TEMPLATE].get(openid="o-1", query={"appid": "wx1"})
    assert len(sent_to(wechatpay_server, TEMPLATE)) == 1


async def test_unsent_request_fails_over_to_the_backup_and_stays_there(
    wechatpay_server: FakeWechatPay,
) -> None:
    clock = FakeClock()
    primary = dead_url()
    wechatpay_server.route("POST", PLAIN, lambda r: {"done": True})
    seen: list[tuple[int | None, str | None]] = []

    def metrics(*event: Any) -> None:
        seen.append((event[2], type(event[5]).__name__ if event[5] else None))

    retry = policy(clock, failover={primary: wechatpay_server.base_url})
    async with wechatpay_server.client(base_url=primary, retry=retry, metrics=metrics) as client:
        # never sent, so safe even for a POST without a request number
        first = await client.chain(PLAIN).post(json={"amount": 1})
        second = await client.chain(PLAIN).post(json={"amount": 2})
    assert first.json() == second.json() == {"done": True}
    assert seen == [(None, "ConnectError"), (200, None), (200, None)]
    assert clock.sleeps == []  # a failover goes at once
    assert [r.json["amount"] for r in sent_to(wechatpay_server, PLAIN)] == [1, 2]


async def test_failover_is_only_for_the_configured_primary(
    wechatpay_server: FakeWechatPay,
) -> None:
    clock = FakeClock()
    retry = policy(clock, max_attempts=2, failover={dead_url(): wechatpay_server.base_url})
    async with wechatpay_server.client(base_url=dead_url(), retry=retry) as client:
        with pytest.raises(httpx.ConnectError):
            await client[TEMPLATE].get(openid="o-1", query={"appid": "wx1"})
    assert wechatpay_server.requests == []
    assert clock.sleeps == [0.5]


def test_failover_true_means_the_official_backup_domain() -> None:
    assert RetryPolicy(failover=True).failover == {
        "https://api.mch.weixin.qq.com/": "https://api2.mch.weixin.qq.com/"
    }
    assert RetryPolicy().failover == {}


async def test_unsent_post_is_not_retried_when_retry_unsent_is_off(
    wechatpay_server: FakeWechatPay,
) -> None:
    clock = FakeClock()
    async with wechatpay_server.client(
        base_url=dead_url(), retry=policy(clock, retry_unsent=False)
    ) as client:
        with pytest.raises(httpx.ConnectError):
            await client.chain(PLAIN).post(json={"amount": 1})
    assert clock.sleeps == []


async def test_per_call_retry_works_on_a_client_without_a_policy(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    clock = FakeClock()
    assert "retry" not in wechatpay_client.middlewares.names
    wechatpay_server.misbehave("status_500")
    resp = await wechatpay_client[TEMPLATE].post(
        openid="o-1", json=coupon(wechatpay_server), retry=policy(clock)
    )
    assert resp.status_code == 200
    assert clock.sleeps == [0.5]
    wechatpay_server.misbehave("status_500")
    with pytest.raises(APIError):  # and the plain handler is unchanged
        await wechatpay_client[TEMPLATE].post(openid="o-1", json=coupon(wechatpay_server))


async def test_per_call_retry_false_and_policy_override_the_clients(
    wechatpay_server: FakeWechatPay,
) -> None:
    client_clock, call_clock = FakeClock(), FakeClock()
    async with wechatpay_server.client(retry=policy(client_clock)) as client:
        wechatpay_server.misbehave("status_500")
        with pytest.raises(APIError):
            await client[TEMPLATE].post(openid="o-1", json=coupon(wechatpay_server), retry=False)
        wechatpay_server.misbehave("status_500")
        await client[TEMPLATE].post(
            openid="o-1", json=coupon(wechatpay_server), retry=policy(call_clock, backoff=2.0)
        )
    assert client_clock.sleeps == []
    assert call_clock.sleeps == [2.0]


def test_sync_verbs_retry_too(wechatpay_server: FakeWechatPay) -> None:
    clock = FakeClock()
    wechatpay_server.misbehave("status_500")
    with wechatpay_server.client(retry=policy(clock)) as client:
        resp = client[TEMPLATE].post_sync(openid="o-1", json=coupon(wechatpay_server))
    assert resp.status_code == 200
    assert len(sent_to(wechatpay_server, TEMPLATE)) == 2


async def test_v2_systemerror_is_retried(wechatpay_server: FakeWechatPay) -> None:
    clock = FakeClock()
    stock = {"coupon_stock_id": "1717", "appid": "wx1", "mch_id": wechatpay_server.merchant.mchid}
    wechatpay_server.misbehave("v2_fail")
    async with wechatpay_server.client(retry=policy(clock)) as client:
        resp = await client[V2_QUERY].post(xml=stock, idempotent=True)
        assert b"SUCCESS" in resp.content
        assert clock.sleeps == [0.5]
        wechatpay_server.misbehave("v2_fail")
        with pytest.raises(APIError) as info:  # a query without a request number
            await client[V2_QUERY].post(xml=stock)
    assert info.value.err_code == "SYSTEMERROR"
    assert clock.sleeps == [0.5]


async def test_bad_call_options_are_refused_before_sending(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    node = wechatpay_client[TEMPLATE]
    with pytest.raises(InvalidArgumentError, match="retry= must be a RetryPolicy"):
        await node.get(openid="o", retry="yes")
    with pytest.raises(InvalidArgumentError, match="idempotent= must be True or False"):
        await node.get(openid="o", idempotent="yes")
    with pytest.raises(InvalidArgumentError, match="jitter"):
        RetryPolicy(jitter=2)
    with pytest.raises(InvalidArgumentError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    assert wechatpay_server.requests == []


def make_request(method: str, **fields: Any) -> Request:
    fields.setdefault("params", {})
    return Request(method=method, template="v3/x", api="v3", base_url="/", **fields)


@pytest.mark.parametrize(
    ("method", "fields", "expected"),
    [
        ("GET", {}, True),
        ("DELETE", {}, True),
        ("PUT", {}, True),
        ("POST", {}, False),
        ("PATCH", {"json": {"amount": 1}, "has_json": True}, False),
        ("POST", {"json": {"out_trade_no": "T1"}, "has_json": True}, True),
        ("POST", {"json": {"combine_out_trade_no": "T1"}, "has_json": True}, True),
        ("POST", {"json": {"out_refund_no": ""}, "has_json": True}, False),
        ("POST", {"json": {"detail": {"out_trade_no": "T1"}}, "has_json": True}, False),
        ("POST", {"xml": {"mch_billno": "B1"}}, True),
        ("POST", {"xml": {"partner_trade_no": "P1"}}, True),
        ("POST", {"params": {"out_trade_no": "T1"}}, True),
        ("POST", {"json": {"out_trade_no": "T1"}, "has_json": True, "idempotent": False}, False),
        ("POST", {"idempotent": True}, True),
    ],
)
def test_idempotency_rule(method: str, fields: dict[str, Any], expected: bool) -> None:
    assert RetryPolicy().is_idempotent(make_request(method, **fields)) is expected


def test_retry_sits_between_transformer_and_signer(wechatpay_server: FakeWechatPay) -> None:
    client = wechatpay_server.client(retry=RetryPolicy())
    assert client.middlewares.names == ("template", "transformer", "retry", "signer", "verifier")
