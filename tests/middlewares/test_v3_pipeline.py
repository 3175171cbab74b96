"""APIv3 calls against the fake WeChat Pay server over real loopback HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from wechatpay_chain import APIError, Client, InvalidArgumentError, VerificationError, crypto
from wechatpay_chain.middlewares import Request
from wechatpay_chain.middlewares.pipeline import Handler
from wechatpay_chain.testing import FakeWechatPay, Reply

pytestmark = pytest.mark.anyio

TEMPLATE = "v3/marketing/favor/users/{openid}/coupons"


def coupon(server: FakeWechatPay, no: str = "r-1") -> dict[str, str]:
    return {
        "stock_id": "9856000",
        "out_request_no": no,
        "appid": "wxd678efh567hg6787",
        "stock_creator_mchid": server.merchant.mchid,
    }


async def test_seed_calls_in_three_forms(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    c = wechatpay_client
    first = await c.v3.marketing.favor.users._openid_.coupons.post(
        openid="o-1", json=coupon(wechatpay_server, "a")
    )
    second = await c.chain(TEMPLATE).post(openid="o-1", json=coupon(wechatpay_server, "b"))
    third = await c[TEMPLATE].post(openid="o-1", json=coupon(wechatpay_server, "c"))
    ids = {r.json()["coupon_id"] for r in (first, second, third)}
    assert len(ids) == 3
    page = await c.v3.marketing.favor.users._openid_.coupons.get(
        openid="o-1", query={"appid": "wxd678efh567hg6787", "offset": 0, "limit": 2}
    )
    assert page.json()["total_count"] == 3
    assert page.json()["limit"] == 2
    assert len(page.json()["data"]) == 2
    multi = await c["v3/multiuse/users/{openid}/coupons"].post(
        openid="o-1",
        json={"stock_id": "1", "out_request_no": "m-1"},
        headers={"Wechatpay-Serial": "PUB_KEY_ID_0114232134912410000000000000"},
    )
    assert multi.json()["coupon_id"]
    sent = wechatpay_server.requests[-1]
    assert sent.headers["Wechatpay-Serial"] == "PUB_KEY_ID_0114232134912410000000000000"


async def test_request_is_signed_over_exact_target_and_body(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    await wechatpay_client[TEMPLATE].get(openid="o 1/é", query={"appid": "wx 1&x=y", "limit": 5})
    recorded = wechatpay_server.requests[-1]
    assert recorded.path == "/v3/marketing/favor/users/o%201%2F%C3%A9/coupons"
    assert recorded.params == {"openid": "o 1/é"}
    assert recorded.query == {"appid": "wx 1&x=y", "limit": "5"}
    assert recorded.headers["User-Agent"].startswith("wechatpay-chain/")
    assert recorded.headers["Accept"] == "application/json"
    auth = recorded.headers["Authorization"]
    assert auth.startswith('WECHATPAY2-SHA256-RSA2048 mchid="1900000001",')
    for field in ("nonce_str=", "signature=", "timestamp=", "serial_no="):
        assert field in auth


async def test_json_body_is_compact_utf8(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    body = {**coupon(wechatpay_server), "comment": "满100减10"}
    await wechatpay_client[TEMPLATE].post(openid="o-1", json=body)
    raw = wechatpay_server.requests[-1].body
    assert "满100减10".encode() in raw
    assert b": " not in raw and b", " not in raw


async def test_placeholder_with_dot_segments_cannot_reach_another_endpoint(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    seen: list[str] = []
    wechatpay_server.route("GET", "v3/secret", lambda r: seen.append("secret") or {})
    await wechatpay_client[TEMPLATE].get(openid="../../../secret?x=#", query={"appid": "a"})
    assert seen == []
    assert wechatpay_server.requests[-1].params == {"openid": "../../../secret?x=#"}


@pytest.mark.parametrize("value", [".", ".."])
async def test_dot_segment_values_are_refused(wechatpay_client: Client, value: str) -> None:
    with pytest.raises(InvalidArgumentError, match="openid"):
        await wechatpay_client[TEMPLATE].get(openid=value)


async def test_bad_call_input_sends_nothing(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    node = wechatpay_client[TEMPLATE]
    with pytest.raises(InvalidArgumentError, match=r"\{openid\} .* has no value"):
        await node.get()
    with pytest.raises(InvalidArgumentError, match=r"\{openid\} must not be ''"):
        await node.get(openid="")
    with pytest.raises(InvalidArgumentError, match=r"unknown option\(s\) \['opneid'\]"):
        await node.get(openid="o", opneid="o")
    with pytest.raises(InvalidArgumentError, match="json body cannot be serialised"):
        await node.post(openid="o", json={"when": object()})
    with pytest.raises(InvalidArgumentError, match="must be str or int"):
        await node.get(openid=True)
    with pytest.raises(InvalidArgumentError, match="APIv2"):
        await node.post(openid="o", xml={"a": "b"})
    assert wechatpay_server.requests == []


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("no_signature", "missing Wechatpay-Timestamp"),
        ("unknown_serial", "which certs does not hold"),
        ("stale_timestamp", "360 s away"),
        ("tamper_body", "does not verify"),
        ("tamper_signature", "does not verify"),
    ],
)
async def test_unverifiable_answers_raise(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, fault: str, message: str
) -> None:
    wechatpay_server.misbehave(fault)
    with pytest.raises(VerificationError, match=message):
        await wechatpay_client[TEMPLATE].post(openid="o-1", json=coupon(wechatpay_server))
    # the next answer is fine again
    ok = await wechatpay_client[TEMPLATE].post(openid="o-1", json=coupon(wechatpay_server))
    assert ok.status_code == 200


async def test_certificate_mode_answers_verify(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    wechatpay_server.mode = "certificate"
    resp = await wechatpay_client[TEMPLATE].post(openid="o-1", json=coupon(wechatpay_server))
    assert resp.headers["Wechatpay-Serial"] == wechatpay_server.certificate_signer.serial


async def test_server_errors_raise_api_error_with_code_and_request_id(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    wechatpay_server.misbehave("status_500")
    with pytest.raises(APIError) as info:
        await wechatpay_client[TEMPLATE].post(openid="o-1", json=coupon(wechatpay_server))
    error = info.value
    assert isinstance(error, httpx.HTTPStatusError)
    assert (error.status_code, error.status, error.code) == (500, 500, "SYSTEM_ERROR")
    assert error.request_id and error.request_id in str(error)


async def test_param_error_carries_message(wechatpay_client: Client) -> None:
    with pytest.raises(APIError) as info:
        await wechatpay_client[TEMPLATE].post(openid="o-1", json={"stock_id": "1"})
    assert (info.value.status_code, info.value.code) == (400, "PARAM_ERROR")
    assert "out_request_no" in info.value.message


async def test_wrong_merchant_key_gets_401_sign_error(wechatpay_server: FakeWechatPay) -> None:
    from wechatpay_chain.testing._fake import generate_key

    async with wechatpay_server.client(private_key=generate_key()) as client:
        with pytest.raises(APIError) as info:
            await client[TEMPLATE].post(openid="o-1", json=coupon(wechatpay_server))
    assert (info.value.status_code, info.value.code) == (401, "SIGN_ERROR")


async def test_dropped_connection_is_a_transport_error(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    wechatpay_server.misbehave("close_connection")
    with pytest.raises(httpx.TransportError):
        await wechatpay_client[TEMPLATE].post(openid="o-1", json=coupon(wechatpay_server))


async def test_slow_answer_times_out(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    wechatpay_server.misbehave("slow", delay=1.0)
    with pytest.raises(httpx.ReadTimeout):
        await wechatpay_client[TEMPLATE].post(
            openid="o-1", json=coupon(wechatpay_server), timeout=0.2
        )


async def test_connections_are_reused(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    for i in range(5):
        await wechatpay_client[TEMPLATE].post(openid="o-1", json=coupon(wechatpay_server, str(i)))
    assert wechatpay_server.connections == 1


async def test_base_url_per_request(wechatpay_server: FakeWechatPay) -> None:
    client = wechatpay_server.client(base_url="http://127.0.0.1:9/")  # nothing listens there
    resp = await client[TEMPLATE].post(
        openid="o-1", json=coupon(wechatpay_server), base_url=wechatpay_server.base_url
    )
    assert resp.status_code == 200
    await client.aclose()


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    async def __call__(self, request: Request, call_next: Handler) -> httpx.Response:
        response = await call_next(request)
        self.seen.append((request.template, response.status_code))
        return response


async def test_user_middleware_can_be_inserted(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    recorder = Recorder()
    client = wechatpay_client.insert("recorder", recorder, before="signer")
    assert client.middlewares.names == ("template", "transformer", "recorder", "signer", "verifier")
    assert wechatpay_client.middlewares.names == ("template", "transformer", "signer", "verifier")
    await client[TEMPLATE].post(openid="o-1", json=coupon(wechatpay_server))
    assert recorder.seen == [(TEMPLATE, 200)]


async def test_without_verifier_accepts_unsigned_answer_and_shares_connections(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    await wechatpay_client[TEMPLATE].post(openid="o-1", json=coupon(wechatpay_server, "x"))
    wechatpay_server.misbehave("no_signature")
    raw = wechatpay_client.without("verifier")
    resp = await raw[TEMPLATE].post(openid="o-1", json=coupon(wechatpay_server, "y"))
    assert resp.status_code == 200
    assert wechatpay_server.connections == 1


async def test_unknown_middleware_name_is_a_clear_error(wechatpay_client: Client) -> None:
    with pytest.raises(InvalidArgumentError, match="no middleware named 'verfier'"):
        wechatpay_client.without("verfier")


async def test_kms_signer_replaces_the_private_key(wechatpay_server: FakeWechatPay) -> None:
    key = wechatpay_server.merchant.private_key
    calls: list[bytes] = []

    async def kms_sign(message: bytes) -> str:
        calls.append(message)
        return crypto.sign_sha256_rsa(message, key)

    options: dict[str, Any] = wechatpay_server.client_options()
    del options["private_key"]  # the key lives in the KMS
    base = Client(**options)
    with pytest.raises(InvalidArgumentError, match="missing: private_key"):
        await base[TEMPLATE].post(openid="o-1", json=coupon(wechatpay_server))
    client = base.with_signer(kms_sign)
    resp = await client[TEMPLATE].post(openid="o-1", json=coupon(wechatpay_server))
    assert resp.status_code == 200
    assert len(calls) == 1 and calls[0].startswith(b"POST\n/v3/marketing/favor/users/o-1/coupons\n")


async def test_handler_reply_object(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    wechatpay_server.route(
        "POST", "v3/pay/transactions/id/{transaction_id}/close", lambda r: Reply(204)
    )
    started = time.monotonic()
    resp = await wechatpay_client.v3.pay.transactions.id._transaction_id_.close.post(
        transaction_id="42", json={"mchid": "1900000001"}
    )
    assert resp.status_code == 204
    assert time.monotonic() - started < 5
