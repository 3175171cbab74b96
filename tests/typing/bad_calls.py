"""Typed calls a type checker must refuse: each `# E:` line names the expected mypy error."""

from __future__ import annotations

from wechatpay_chain import Client


async def mistakes(client: Client) -> None:
    client.v3.pay.transaction  # E: has no attribute "transaction"
    client.v3.pay.transactions.outTradeNo._out_trade_no_.get(query={"mchid": "1"})  # E: Missing named argument "out_trade_no"
    client.v3.pay.transactions.outTradeNo._out_trade_no_.get(trade_no="T", query={"mchid": "1"})  # E: Unexpected keyword argument "trade_no"
    await client.v3.pay.transactions.native.post(json={"appid": "wx1", "mchid": "1", "description": "d", "out_trade_no": "T", "amount": {"total": 1}})  # E: Missing key "notify_url"
    await client.v3.pay.transactions.native.post(json={"appid": "wx1", "mchid": "1", "description": "d", "out_trade_no": "T", "notify_url": "u", "amount": {"total": "1"}})  # E: "total" has type "int"
    await client.v3.pay.transactions.native.post(json={"appid": "wx1", "mchid": "1", "description": "d", "out_trade_no": "T", "notify_url": "u", "amount": {"total": 1}, "limit_pay": ["no_cash"]})  # E: "Literal['no_cash']"
    client.v2.pay.micropay.post_sync(xml={"appid": "a", "mch_id": "1", "body": "b", "out_trade_no": "T", "total_fee": 1, "spbill_create_ip": "1.1.1.1", "auth_code": "1", "sign_type": "SHA1"})  # E: "Literal['SHA1']"
    client.v3.pay.transactions.id._transaction_id_.get_sync(transaction_id="1", query={"mchid": "1"}, timeout="5")  # E: Argument "timeout"
    answer = client.v3.pay.transactions.id._transaction_id_.get_sync(transaction_id="1", query={"mchid": "1"}).json()
    answer["trade_stat"]  # E: has no key "trade_stat"
    client.v2.secapi.pay.refund.post_sync(xml={"appid": "a", "mch_id": "1", "out_refund_no": "R", "total_fee": 1, "refund_fee": 1, "out_trade_no": "T", "transaction_id": "4"})  # E: Missing named argument "security"
    client["v3/pay/transactions/native"].post_sync(json={})  # E: Missing keys
