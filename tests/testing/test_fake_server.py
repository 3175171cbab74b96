"""The fake server's own HTTP behaviour."""

from __future__ import annotations

import httpx

from wechatpay_chain.testing import FakeWechatPay


def test_head_answer_has_no_body_and_keeps_the_connection(
    wechatpay_server: FakeWechatPay,
) -> None:
    with httpx.Client() as http:
        first = http.head(wechatpay_server.base_url + "v3/anything")
        second = http.head(wechatpay_server.base_url + "v3/anything")
    assert (first.status_code, second.status_code) == (401, 401)  # unsigned requests
    assert int(first.headers["Content-Length"]) > 0 and first.content == b""
    assert wechatpay_server.connections == 1
