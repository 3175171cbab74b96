"""The ``logger`` middleware: one line per exchange, templates not paths, metrics hooks."""

from __future__ import annotations

import logging
import socket
from typing import Any

import httpx
import pytest

from wechatpay_chain import APIError, RetryPolicy
from wechatpay_chain.testing import FakeWechatPay
from wechatpay_chain.testing._fake import private_pem

pytestmark = pytest.mark.anyio

TEMPLATE = "v3/marketing/favor/users/{openid}/coupons"
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


def coupon(server: FakeWechatPay, no: str = "REQ-NO-77") -> dict[str, str]:
    return {
        "stock_id": "9856000",
        "out_request_no": no,
        "appid": "wxd678efh567hg6787",
        "stock_creator_mchid": server.merchant.mchid,
    }


def lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "wechatpay_chain"]


async def test_one_line_per_request_names_the_template_never_the_ids(
    wechatpay_server: FakeWechatPay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wechatpay_chain")
    async with wechatpay_server.client(log_requests=True) as client:
        resp = await client[TEMPLATE].post(openid=OPENID, json=coupon(wechatpay_server))
    [record] = lines(caplog)
    message = record.getMessage()
    assert message.startswith(f"POST {TEMPLATE} 200 ")
    assert f"Request-ID={resp.headers['Request-ID']}" in message
    assert "ms" in message
    for private in (OPENID, "REQ-NO-77", resp.json()["coupon_id"]):
        assert private not in caplog.text
    fields: Any = record.__dict__["wechatpay"]
    assert fields["template"] == TEMPLATE
    assert fields["status"] == 200
    assert fields["request_id"] == resp.headers["Request-ID"]
    assert fields["duration"] > 0


async def test_each_attempt_gets_a_line_with_the_wechatpay_code(
    wechatpay_server: FakeWechatPay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wechatpay_chain")
    wechatpay_server.misbehave("status_500")
    retry = RetryPolicy(backoff=0.0)
    async with wechatpay_server.client(log_requests=True, retry=retry) as client:
        await client[TEMPLATE].post(openid=OPENID, json=coupon(wechatpay_server))
    messages = [r.getMessage() for r in lines(caplog)]
    assert len(messages) == 2
    assert messages[0].startswith(f"POST {TEMPLATE} 500 SYSTEM_ERROR ")
    assert messages[1].startswith(f"POST {TEMPLATE} 200 ")
    assert messages[1].endswith("attempt=2")
    retried = [r.getMessage() for r in caplog.records if r.name == "wechatpay_chain.retry"]
    assert retried and "HTTP 500 SYSTEM_ERROR; attempt 2 of 4" in retried[0]
    assert OPENID not in caplog.text


async def test_transport_errors_are_logged_by_type(
    wechatpay_server: FakeWechatPay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wechatpay_chain")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    async with wechatpay_server.client(base_url=dead, log_requests=True) as client:
        with pytest.raises(httpx.ConnectError):
            await client[TEMPLATE].get(openid=OPENID, query={"appid": "wx1"})
    [record] = lines(caplog)
    assert record.getMessage().startswith(f"GET {TEMPLATE} ConnectError ")
    assert "Request-ID=-" in record.getMessage()


async def test_metrics_hook_sees_every_exchange(wechatpay_server: FakeWechatPay) -> None:
    events: list[tuple[Any, ...]] = []
    async with wechatpay_server.client(metrics=lambda *e: events.append(e)) as client:
        ok = await client[TEMPLATE].post(openid=OPENID, json=coupon(wechatpay_server))
        with pytest.raises(APIError):
            await client[TEMPLATE].post(openid=OPENID, json={"stock_id": "1"})
    (m1, t1, s1, d1, r1, e1), (m2, t2, s2, d2, r2, e2) = events
    assert (m1, t1, s1, r1, e1) == ("POST", TEMPLATE, 200, ok.headers["Request-ID"], None)
    assert (m2, t2, s2, e2) == ("POST", TEMPLATE, 400, None) and r2
    assert d1 > 0 and d2 > 0


async def test_a_broken_metrics_hook_does_not_fail_the_call(
    wechatpay_server: FakeWechatPay, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*event: Any) -> None:
        raise RuntimeError("statsd is down")

    async with wechatpay_server.client(metrics=broken) as client:
        resp = await client[TEMPLATE].post(openid=OPENID, json=coupon(wechatpay_server))
    assert resp.status_code == 200
    assert any("metrics hook" in r.getMessage() for r in caplog.records)


async def test_nothing_is_logged_when_the_level_is_off_and_no_secret_ever(
    wechatpay_server: FakeWechatPay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="wechatpay_chain")
    async with wechatpay_server.client(log_requests=True) as client:
        await client[TEMPLATE].post(openid=OPENID, json=coupon(wechatpay_server))
    assert lines(caplog) == []
    caplog.set_level(logging.DEBUG, logger="wechatpay_chain")
    m = wechatpay_server.merchant
    wechatpay_server.misbehave("status_500", times=5)
    async with wechatpay_server.client(log_requests=True, retry=RetryPolicy(backoff=0)) as client:
        with pytest.raises(APIError):
            await client[TEMPLATE].post(openid=OPENID, json=coupon(wechatpay_server))
    assert len(lines(caplog)) == 4
    pem = private_pem(m.private_key).decode()
    for secret in (m.secret, m.apiv3_key, pem.splitlines()[1]):
        assert secret not in caplog.text
