"""The fake server's catch-all mode: every endpoint answers, after the usual checks."""

from __future__ import annotations

import pytest

from wechatpay_chain import APIError, Client, Transformer, VerificationError
from wechatpay_chain.testing import FakeWechatPay, Merchant

pytestmark = pytest.mark.anyio

QUERY = "v3/pay/transactions/id/{transaction_id}"


async def test_unrouted_endpoints_are_404_until_catch_all_is_on(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    with pytest.raises(APIError) as v3:
        await wechatpay_client[QUERY].get(transaction_id="42")
    assert v3.value.response.status_code == 404
    with pytest.raises(APIError) as v2:
        await wechatpay_client.v2.pay.orderquery.post(xml={"mch_id": "1900000001"})
    assert v2.value.response.status_code == 404

    wechatpay_server.catch_all()
    resp = await wechatpay_client[QUERY].get(transaction_id="4 2", query={"mchid": "1900000001"})
    assert resp.json() == {
        "echo": {
            "method": "GET",
            "path": "/v3/pay/transactions/id/4%202",
            "query": {"mchid": "1900000001"},
            "json": None,
        }
    }
    recorded = wechatpay_server.requests[-1]
    assert (recorded.template, recorded.params) == ("v3/pay/transactions/id/4%202", {})

    wechatpay_server.reset()
    with pytest.raises(APIError):
        await wechatpay_client[QUERY].get(transaction_id="42")


async def test_v2_echo_is_a_signed_success_with_the_request_fields(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    wechatpay_server.catch_all()
    fields = {"mch_id": "1900000001", "out_trade_no": "T-1", "sign_type": "HMAC-SHA256"}
    resp = await wechatpay_client.v2.pay.orderquery.post(xml=fields)
    answer = Transformer.to_dict(resp.content)
    assert {k: answer[k] for k in fields} == fields
    assert (answer["return_code"], answer["result_code"]) == ("SUCCESS", "SUCCESS")
    assert (answer["echo_method"], answer["echo_path"]) == ("POST", "/pay/orderquery")
    assert len(answer["sign"]) == 64  # HMAC-SHA256, as asked
    assert answer["nonce_str"] != wechatpay_server.requests[-1].data["nonce_str"]


async def test_catch_all_keeps_the_checks_of_a_routed_request(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    wechatpay_server.catch_all()
    stranger = Merchant.generate()
    wrong_key = wechatpay_server.client(private_key=stranger.private_key)
    with pytest.raises(APIError) as unsigned:
        await wrong_key[QUERY].get(transaction_id="42")
    assert (unsigned.value.response.status_code, unsigned.value.code) == (401, "SIGN_ERROR")

    wrong_secret = wechatpay_server.client(secret=stranger.secret)
    with pytest.raises(APIError, match="签名错误"):
        await wrong_secret.v2.pay.orderquery.post(xml={"mch_id": "1900000001"})

    # Certificate endpoints still want the merchant certificate (here: none, and no TLS).
    with pytest.raises(APIError) as no_cert:
        await wechatpay_client.v2.secapi.pay.refund.post(xml={"mch_id": "1900000001"})
    assert no_cert.value.code == "CA_ERROR"
    await wrong_key.aclose()
    await wrong_secret.aclose()


async def test_routes_win_over_the_catch_all_and_faults_still_apply(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    wechatpay_server.catch_all()
    coupons = "v3/marketing/favor/users/{openid}/coupons"
    page = await wechatpay_client[coupons].get(openid="o-1", query={"appid": "wx1"})
    assert page.json()["total_count"] == 0  # the seed route, not an echo

    wechatpay_server.misbehave("tamper_body", template="v3/refund/domestic/refunds")
    refund = wechatpay_client.v3.refund.domestic.refunds
    with pytest.raises(VerificationError):
        await refund.post(json={"out_refund_no": "R-1"})
    assert (await refund.post(json={"out_refund_no": "R-1"})).json()["echo"]["json"] == {
        "out_refund_no": "R-1"
    }
