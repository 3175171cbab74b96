"""Typed calls a type checker must accept (checked by tests/test_typed_endpoints.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
from typing_extensions import assert_type

from wechatpay_chain import Chain, Client

if TYPE_CHECKING:
    from wechatpay_chain.endpoints.v2.secapi import Secapi_Mch_AddInstitutionsub
    from wechatpay_chain.endpoints.v3.applyment4sub import Applyment4sub_Applyment_Slash
    from wechatpay_chain.endpoints.v3.pay import Pay_Transactions_Native


async def v3_calls(client: Client, dynamic: str) -> None:
    native = client.v3.pay.transactions.native
    resp = await native.post(
        json={
            "appid": "wxd678efh567hg6787",
            "mchid": "1230000109",
            "description": "Image形象店-深圳腾大-QQ公仔",
            "out_trade_no": "1217752501201407033233368018",
            "notify_url": "https://www.weixin.qq.com/wxpay/pay.php",
            "amount": {"total": 100, "currency": "CNY"},
            "limit_pay": ["no_credit"],
            "detail": {
                "goods_detail": [{"merchant_goods_id": "1", "quantity": 1, "unit_price": 1}]
            },
        },
        timeout=5.0,
        headers={"Wechatpay-Serial": "PUB_KEY_ID_0114232134912410000000000000"},
    )
    code_url: str = resp.json()["code_url"]
    assert isinstance(resp, httpx.Response)
    assert_type(native, Pay_Transactions_Native)
    assert_type(client["v3/pay/transactions/native"], Pay_Transactions_Native)
    assert_type(client.chain("v3/pay/transactions/native"), Pay_Transactions_Native)

    order = client.v3.pay.transactions.outTradeNo._out_trade_no_
    answer = order.get_sync(out_trade_no="T-1", query={"mchid": "1230000109"}).json()
    total: int = answer["amount"]["total"]
    state: str | None = answer.get("trade_state")
    await order.close.post(out_trade_no="T-1", json={"mchid": "1230000109"})

    # Item access for a segment no attribute can spell, a keyword segment, a typed node as a Chain.
    as_chain: Chain = client.v3.global_.statements
    assert_type(client.v3.applyment4sub.applyment[""], Applyment4sub_Applyment_Slash)
    # A segment named like a verb: chain through it, or call it (the untyped DELETE).
    receivers = client.v3.ecommerce.profitsharing.receivers
    await receivers.delete.post(json={"appid": "wx1", "type": "MERCHANT_ID", "account": "1"})
    await receivers.delete()
    print(code_url, total, state, as_chain)


async def untyped_forms(client: Client, dynamic: str) -> None:
    # A str that is not a documented literal template, and an undocumented node: the Chain.
    node = client.chain(dynamic)
    assert_type(node, Chain)
    await node.whatever.post(json={"free": "form"})
    await client["v3/not/yet/documented"].deeper.get(query={"x": "1"})
    # A verb the documentation does not list on a typed node falls back to the untyped one.
    raw: Any = await client.v3.pay.transactions.native.get()
    print(raw)


async def v2_calls(client: Client) -> None:
    resp = await client.v2.pay.micropay.post(
        xml={
            "appid": "wx2421b1c4370ec43b",
            "mch_id": "10000100",
            "body": "image",
            "out_trade_no": "1415757673",
            "total_fee": 1,
            "spbill_create_ip": "14.17.22.52",
            "auth_code": "120061098828009406",
            "sign_type": "HMAC-SHA256",
            "device_info": None,  # None leaves an optional field out
        }
    )
    assert_type(resp, httpx.Response)
    client.v2.secapi.pay.refund.post_sync(
        security=True,
        xml={
            "appid": "wx1",
            "mch_id": "1",
            "out_refund_no": "R1",
            "total_fee": 1,
            "refund_fee": 1,
            "transaction_id": "4200",
            "out_trade_no": "T-1",
        },
    )
    assert_type(client.v2.secapi.mch["addInstitutionsub"], Secapi_Mch_AddInstitutionsub)
