"""httpx models built directly on the hot path: same objects as httpx's constructors build."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from wechatpay_chain import Client
from wechatpay_chain.testing import FakeWechatPay
from wechatpay_chain.transport import engine as _engine
from wechatpay_chain.transport import models as _models
from wechatpay_chain.transport import pool as _pool

pytestmark = pytest.mark.anyio

ITEMS = [
    (b"Host", b"host", b"api.mch.weixin.qq.com"),
    (b"Wechatpay-Serial", b"wechatpay-serial", b"PUB_KEY_ID_0114232134912410000000000000"),
    (b"Content-Length", b"content-length", b"2"),
]


def test_this_httpx_takes_the_direct_builders() -> None:
    assert _models.FAST  # the layout check passed for the httpx this project pins
    assert _models.build_request is _models._fast_request


def test_direct_and_public_builders_agree() -> None:
    url = httpx.URL("https://api.mch.weixin.qq.com/v3/pay/transactions/native")
    fast = _models._fast_request("POST", url, list(ITEMS), b"{}", {"timeout": {}})
    public = _models._public_request("POST", url, list(ITEMS), b"{}", {"timeout": {}})
    assert fast.headers.raw == public.headers.raw
    assert fast.headers["wechatpay-serial"] == public.headers["Wechatpay-Serial"]
    assert fast.content == public.content == b"{}"
    assert (fast.method, fast.url) == (public.method, public.url)
    answer = _models._fast_response(201, list(ITEMS), httpx.ByteStream(b"{}"), {})
    reference = _models._public_response(201, list(ITEMS), httpx.ByteStream(b"{}"), {})
    assert answer.headers.multi_items() == reference.headers.multi_items()
    assert answer.status_code == reference.status_code == 201
    assert _models.header_items(answer.headers) == ITEMS


def test_a_changed_httpx_layout_falls_back_to_the_public_constructors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = httpx.Response.__init__

    def newer_httpx(self: httpx.Response, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._something_new = True  # type: ignore[attr-defined]

    monkeypatch.setattr(httpx.Response, "__init__", newer_httpx)
    assert _models._layout_matches() is False


async def test_requests_work_on_the_public_constructors(
    wechatpay_server: FakeWechatPay, monkeypatch: pytest.MonkeyPatch, anyio_backend: str
) -> None:
    monkeypatch.setattr(_pool, "build_request", _models._public_request)
    monkeypatch.setattr(_engine, "build_response", _models._public_response)
    monkeypatch.setattr(_models, "header_items", _models._public_items)
    client: Client = wechatpay_server.client()
    try:
        answer = await client.v3.marketing.favor.users._openid_.coupons.post(
            openid="o-1",
            json={"stock_id": "9856000", "out_request_no": "m-1", "appid": "wx1",
                  "stock_creator_mchid": wechatpay_server.merchant.mchid},
        )
        assert answer.json()["coupon_id"]
        wechatpay_server.misbehave("tamper_body")
        with pytest.raises(Exception, match="does not verify"):
            await client.v3.marketing.favor.users._openid_.coupons.post(
                openid="o-1",
                json={"stock_id": "9856000", "out_request_no": "m-2", "appid": "wx1",
                      "stock_creator_mchid": wechatpay_server.merchant.mchid},
            )
    finally:
        await client.aclose()
