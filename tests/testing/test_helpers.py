"""What the testing helpers offer users: scripted business errors, notifications without HTTP,
case-insensitive recorded headers, a typed client, reprs that leak nothing."""

from __future__ import annotations

import pytest

from wechatpay_chain import APIError, Client, RetryPolicy
from wechatpay_chain.testing import FakeWechatPay

pytestmark = pytest.mark.anyio

COUPON = "v3/marketing/favor/users/{openid}/coupons"


def _coupon(server: FakeWechatPay, n: int) -> dict[str, str]:
    return {
        "stock_id": "9856000",
        "out_request_no": f"helper-{n}",
        "appid": "wx1",
        "stock_creator_mchid": server.merchant.mchid,
    }


async def test_a_scripted_business_error_is_answered_once_and_signed(
    wechatpay_server: FakeWechatPay, anyio_backend: str
) -> None:
    client = wechatpay_server.client()
    wechatpay_server.fail("POST", COUPON, "NOT_ENOUGH", "批次预算不足", status=403)
    try:
        with pytest.raises(APIError) as caught:
            await client[COUPON].post(openid="o-1", json=_coupon(wechatpay_server, 1))
        assert (caught.value.status_code, caught.value.code) == (403, "NOT_ENOUGH")
        assert "批次预算不足" in str(caught.value)
        # The error answer was signed: the verifier accepted it before the transformer raised.
        assert "Wechatpay-Signature" in caught.value.response.headers
        again = await client[COUPON].post(openid="o-1", json=_coupon(wechatpay_server, 2))
        assert again.json()["coupon_id"]
    finally:
        await client.aclose()


async def test_a_scripted_429_with_retry_after_is_retried_by_the_retry_policy(
    wechatpay_server: FakeWechatPay, anyio_backend: str
) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    client = wechatpay_server.client(retry=RetryPolicy(sleep=sleep))
    wechatpay_server.fail("POST", COUPON, "FREQUENCY_LIMITED", status=429, retry_after=2)
    try:
        answer = await client[COUPON].post(openid="o-1", json=_coupon(wechatpay_server, 3))
        assert answer.status_code == 200
        assert waits and waits[0] >= 2  # Retry-After honoured
        assert len([r for r in wechatpay_server.requests if r.template == COUPON]) >= 2
    finally:
        await client.aclose()


def test_a_scripted_apiv2_failure_carries_err_code(wechatpay_server: FakeWechatPay) -> None:
    template = "v2/pay/orderquery"
    wechatpay_server.route("POST", template, lambda request: {"trade_state": "SUCCESS"})
    wechatpay_server.fail("POST", template, "SYSTEMERROR", "系统繁忙")
    xml = {"mch_id": wechatpay_server.merchant.mchid, "appid": "wx1", "out_trade_no": "o-1"}
    with wechatpay_server.client() as client:
        with pytest.raises(APIError) as caught:
            client[template].post_sync(xml=xml)
        assert caught.value.code == "SYSTEMERROR"
        assert caught.value.err_code_des == "系统繁忙"
        answer = client[template].post_sync(xml=xml)  # once only
    assert b"SUCCESS" in answer.content


def test_bad_scripts_are_refused(wechatpay_server: FakeWechatPay) -> None:
    with pytest.raises(ValueError, match="4xx or 5xx"):
        wechatpay_server.fail("POST", COUPON, "X", status=200)
    with pytest.raises(ValueError, match="times"):
        wechatpay_server.fail("POST", COUPON, "X", times=0)


def test_a_notification_is_built_without_http_and_verifies(
    wechatpay_server: FakeWechatPay,
) -> None:
    headers, body = wechatpay_server.notification(
        "TRANSACTION.SUCCESS", {"out_trade_no": "o-9", "trade_state": "SUCCESS"}
    )
    with wechatpay_server.client() as client:
        notification = client.notifications.parse(headers, body)
    assert notification.event_type == "TRANSACTION.SUCCESS"
    assert notification.resource["out_trade_no"] == "o-9"
    headers, body = wechatpay_server.v2_notification({"out_trade_no": "o-10"})
    with wechatpay_server.client() as client:
        paid = client.notifications.parse_v2_pay(body)
    assert paid.out_trade_no == "o-10"


def test_recorded_headers_are_found_in_any_case(wechatpay_server: FakeWechatPay) -> None:
    with wechatpay_server.client() as client:
        client.v3.certificates.get_sync()
    recorded = wechatpay_server.requests[-1].headers
    assert recorded.get("authorization", "").startswith("WECHATPAY2-SHA256-RSA2048 ")
    assert recorded["AUTHORIZATION"] == recorded["Authorization"]
    assert "user-agent" in recorded and "no-such-header" not in recorded


def test_client_is_a_client_and_reprs_hold_no_secret(wechatpay_server: FakeWechatPay) -> None:
    client = wechatpay_server.client()
    assert isinstance(client, Client)
    client.v3.certificates.get_sync()
    client.close()
    merchant = wechatpay_server.merchant
    texts = [repr(wechatpay_server), repr(wechatpay_server.requests[-1]), repr(merchant)]
    for text in texts:
        assert merchant.secret not in text and merchant.apiv3_key not in text
        assert "Authorization" not in text and "WECHATPAY2" not in text
    assert wechatpay_server.base_url in texts[0] and merchant.mchid in texts[0]
    assert "GET /v3/certificates" in texts[1]
