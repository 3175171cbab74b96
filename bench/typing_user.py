"""A user's script for bench/typing_cost.py: the same code against the typed and untyped package."""

from __future__ import annotations

import anyio

from wechatpay_chain import Client


async def pay(client: Client, order: str) -> str:
    resp = await client.v3.pay.transactions.native.post(
        json={
            "appid": "wxd678efh567hg6787",
            "mchid": "1230000109",
            "description": "Image形象店-深圳腾大-QQ公仔",
            "out_trade_no": order,
            "notify_url": "https://www.weixin.qq.com/wxpay/pay.php",
            "amount": {"total": 100, "currency": "CNY"},
        }
    )
    url: str = resp.json()["code_url"]
    return url


async def status(client: Client, order: str) -> str:
    resp = await client.v3.pay.transactions.outTradeNo._out_trade_no_.get(
        out_trade_no=order, query={"mchid": "1230000109"}
    )
    state: str = resp.json().get("trade_state", "")
    return state


async def refund(client: Client, order: str) -> str:
    resp = await client["v3/refund/domestic/refunds"].post(
        json={
            "out_trade_no": order,
            "out_refund_no": order + "-R",
            "amount": {"refund": 100, "total": 100, "currency": "CNY"},
        }
    )
    refund_id: str = resp.json()["refund_id"]
    return refund_id


def micropay(client: Client, order: str) -> bytes:
    resp = client.v2.pay.micropay.post_sync(
        xml={
            "appid": "wx2421b1c4370ec43b",
            "mch_id": "10000100",
            "body": "image",
            "out_trade_no": order,
            "total_fee": 1,
            "spbill_create_ip": "14.17.22.52",
            "auth_code": "120061098828009406",
        }
    )
    return resp.content


async def main() -> None:
    async with Client(mchid="1230000109") as client:
        print(await pay(client, "T-1"), await status(client, "T-1"), await refund(client, "T-1"))
        print(micropay(client, "T-2"))


if __name__ == "__main__":
    anyio.run(main)
