"""``wechatpay-chain demo``: the seed calls against an embedded fake WeChat Pay server.

Every call goes over real loopback HTTP, is signed, and its answer verified. Exits non-zero
when any call fails.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from .._client import Client
from ..protocol.transformer import Transformer

__all__ = ["run"]

FAVOR = "v3/marketing/favor/users/{openid}/coupons"
MULTIUSE = "v3/multiuse/users/{openid}/coupons"
SEND_COUPON = "v2/mmpaymkttransfers/send_coupon"
QUERY_STOCK = "v2/mmpaymkttransfers/query_coupon_stock"
APPID = "wxd678efh567hg6787"
OPENID = "o-demo-user"
PUBLIC_KEY_HEADER = {"Wechatpay-Serial": "PUB_KEY_ID_0114232134912410000000000000"}


def _favor_body(mchid: str, n: str) -> dict[str, str]:
    return {
        "stock_id": "9856000",
        "out_request_no": f"demo-{n}",
        "appid": APPID,
        "stock_creator_mchid": mchid,
    }


def _v2_coupon(mchid: str, n: str) -> dict[str, str]:
    return {
        "coupon_stock_id": "1717",
        "openid_count": "1",
        "partner_trade_no": f"{mchid}20261122{n}",
        "openid": OPENID,
        "appid": APPID,
        "mch_id": mchid,
    }


def _v2_stock(mchid: str) -> dict[str, str]:
    return {"coupon_stock_id": "1717", "appid": APPID, "mch_id": mchid}


Call = tuple[str, Callable[[], Awaitable[httpx.Response] | httpx.Response]]


def _calls(client: Client, mchid: str, sync: bool, with_v2: bool) -> list[Call]:
    """The seed calls, each in the three chain forms."""
    tag = "sync" if sync else "async"
    fav_nodes = [
        ("attribute", client.v3.marketing.favor.users._openid_.coupons),
        ("chain()", client.chain(FAVOR)),
        ("item", client[FAVOR]),
    ]
    multi_nodes = [
        ("attribute", client.v3.multiuse.users._openid_.coupons),
        ("chain()", client.chain(MULTIUSE)),
        ("item", client[MULTIUSE]),
    ]
    calls: list[Call] = []
    for i, (form, node) in enumerate(fav_nodes):
        body = _favor_body(mchid, f"{tag}-{i}")
        send = node.post_sync if sync else node.post
        calls.append((f"POST {FAVOR} [{form}, {tag}]", _bind(send, openid=OPENID, json=body)))
    for form, node in fav_nodes:
        get = node.get_sync if sync else node.get
        query = {"appid": APPID, "offset": 0, "limit": 10}
        calls.append((f"GET  {FAVOR} [{form}, {tag}]", _bind(get, openid=OPENID, query=query)))
    for i, (form, node) in enumerate(multi_nodes):
        body = {"stock_id": "1212", "out_request_no": f"multi-{tag}-{i}", "appid": APPID}
        send = node.post_sync if sync else node.post
        calls.append(
            (
                f"POST {MULTIUSE} [{form}, {tag}]",
                _bind(send, openid=OPENID, json=body, headers=PUBLIC_KEY_HEADER),
            )
        )
    if with_v2:
        v2_coupon = [
            ("attribute", client.v2.mmpaymkttransfers.send_coupon),
            ("chain()", client.chain(SEND_COUPON)),
            ("item", client[SEND_COUPON]),
        ]
        v2_stock = [
            ("attribute", client.v2.mmpaymkttransfers.query_coupon_stock),
            ("chain()", client.chain(QUERY_STOCK)),
            ("item", client[QUERY_STOCK]),
        ]
        for i, (form, node) in enumerate(v2_coupon):
            send = node.post_sync if sync else node.post
            xml = _v2_coupon(mchid, f"{int(sync)}{i}")
            calls.append(
                (f"POST {SEND_COUPON} [{form}, {tag}]", _bind(send, security=True, xml=xml))
            )
        for form, node in v2_stock:
            send = node.post_sync if sync else node.post
            calls.append((f"POST {QUERY_STOCK} [{form}, {tag}]", _bind(send, xml=_v2_stock(mchid))))
    return calls


def _bind(fn: Callable[..., Any], **options: Any) -> Callable[[], Any]:
    return lambda: fn(**options)


def _show(response: httpx.Response) -> str:
    if (
        response.headers.get("Content-Type", "").startswith("text/xml")
        or response.text[:5] == "<xml>"
    ):
        fields = Transformer.to_dict(response.content)
        fields.pop("sign", None)
        fields.pop("nonce_str", None)
        return json.dumps(fields, ensure_ascii=False)
    return response.text


def run(verbose: bool = True) -> int:
    """Run the demo; 0 when every call succeeded."""
    from ..testing import FakeWechatPay

    server = FakeWechatPay(tls=True)
    with_v2 = True
    failures = 0
    total = 0
    with server:
        client = server.client()
        mchid = server.merchant.mchid

        async def run_async() -> None:
            nonlocal failures, total
            for label, call in _calls(client, mchid, sync=False, with_v2=with_v2):
                total += 1
                try:
                    response = await call()  # type: ignore[misc]
                    if verbose:
                        print(f"ok   {label}\n     {response.status_code} {_show(response)}")
                except Exception as exc:
                    failures += 1
                    print(f"FAIL {label}\n     {type(exc).__name__}: {exc}")
            # No aclose() here: closing is final and the sync calls below use the client;
            # this loop's pools close when asyncio.run ends it.

        asyncio.run(run_async())
        with client:
            for label, call in _calls(client, mchid, sync=True, with_v2=with_v2):
                total += 1
                try:
                    response = call()
                    assert isinstance(response, httpx.Response)
                    if verbose:
                        print(f"ok   {label}\n     {response.status_code} {_show(response)}")
                except Exception as exc:
                    failures += 1
                    print(f"FAIL {label}\n     {type(exc).__name__}: {exc}")
    print(f"\n{total - failures} passed, {failures} failed: signed and verified seed calls")
    return 1 if failures else 0
