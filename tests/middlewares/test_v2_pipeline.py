"""APIv2 (XML) calls against the fake WeChat Pay server over real loopback HTTP(S).

The seeds (send_coupon with the merchant certificate, query_coupon_stock without) in all
three chain forms, async and sync; mutual TLS and its failures; the APIv2 bad-input list.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from wechatpay_chain import (
    APIError,
    Client,
    InvalidArgumentError,
    Transformer,
    VerificationError,
    crypto,
)
from wechatpay_chain.protocol.v2 import sign_fields
from wechatpay_chain.testing import FakeWechatPay, Merchant, Reply
from wechatpay_chain.testing._fake import private_pem
from wechatpay_chain.testing._pki import TestCA

pytestmark = pytest.mark.anyio

SEND = "v2/mmpaymkttransfers/send_coupon"
QUERY = "v2/mmpaymkttransfers/query_coupon_stock"
APPID = "wxd678efh567hg6787"


def coupon(server: FakeWechatPay, no: str = "1", **extra: Any) -> dict[str, Any]:
    mchid = server.merchant.mchid
    return {
        "coupon_stock_id": "1717",
        "openid_count": 1,
        "partner_trade_no": f"{mchid}20260101{no}",
        "openid": "o-1",
        "appid": APPID,
        "mch_id": mchid,
        **extra,
    }


def stock(server: FakeWechatPay) -> dict[str, Any]:
    return {"coupon_stock_id": "1717", "appid": APPID, "mch_id": server.merchant.mchid}


def fields(response: httpx.Response) -> dict[str, Any]:
    return Transformer.to_dict(response.content)


def merchant_cert_pem(server: FakeWechatPay) -> bytes:
    assert server.ca is not None
    return server.ca.client_pem(server.merchant.mchid, server.merchant.private_key)


@pytest.fixture(scope="module")
def other_merchant() -> Merchant:
    return Merchant.generate("1900000002")


@pytest.fixture
def no_cert_client(wechatpay_tls_server: FakeWechatPay) -> Iterator[Client]:
    """A client for the HTTPS fake that trusts its CA but holds no merchant certificate."""
    client: Client = wechatpay_tls_server.client(merchant_cert=None, merchant_key=None)
    yield client
    client.close()


# --- the seeds, in three forms ---------------------------------------------------------------


async def test_seeds_run_in_three_forms(
    wechatpay_tls_server: FakeWechatPay, wechatpay_tls_client: Client
) -> None:
    c, server = wechatpay_tls_client, wechatpay_tls_server
    senders = [
        c.v2.mmpaymkttransfers.send_coupon,
        c.chain(SEND),
        c[SEND],
    ]
    ids = []
    for i, node in enumerate(senders):
        answer = fields(await node.post(security=True, xml=coupon(server, str(i))))
        assert (answer["return_code"], answer["result_code"], answer["ret_code"]) == (
            "SUCCESS",
            "SUCCESS",
            "SUCCESS",
        )
        assert (answer["resp_count"], answer["success_count"], answer["failed_count"]) == (
            "1",
            "1",
            "0",
        )
        assert answer["openid"] == "o-1" and answer["mch_id"] == server.merchant.mchid
        ids.append(answer["coupon_id"])
    assert len(set(ids)) == 3
    sent = server.requests[-1]
    assert sent.path == "/mmpaymkttransfers/send_coupon"
    assert sent.template == SEND
    assert sent.tls_client_cert is True
    assert sent.data["openid_count"] == "1" and len(sent.data["nonce_str"]) == 32

    for node in (c.v2.mmpaymkttransfers.query_coupon_stock, c.chain(QUERY), c[QUERY]):
        answer = fields(await node.post(xml=stock(server)))
        assert answer["coupon_stock_id"] == "1717"
        assert answer["is_send_num"] == "3"
        assert answer["coupon_value"] == "100" and answer["coupon_stock_status"] == "4"
    assert server.requests[-1].tls_client_cert is False  # not a security=True call


def test_seeds_run_in_three_forms_sync(wechatpay_tls_server: FakeWechatPay) -> None:
    server = wechatpay_tls_server
    with server.client() as c:
        senders = [c.v2.mmpaymkttransfers.send_coupon, c.chain(SEND), c[SEND]]
        ids = {
            fields(node.post_sync(security=True, xml=coupon(server, f"s{i}")))["coupon_id"]
            for i, node in enumerate(senders)
        }
        assert len(ids) == 3
        for node in (c.v2.mmpaymkttransfers.query_coupon_stock, c.chain(QUERY), c[QUERY]):
            assert fields(node.post_sync(xml=stock(server)))["is_send_num"] == "3"
        with pytest.raises(VerificationError, match="does not match"):
            server.misbehave("v2_wrong_sign")
            c[QUERY].post_sync(xml=stock(server))
    assert server.requests[0].tls_client_cert is True


async def test_send_coupon_is_idempotent_on_partner_trade_no(
    wechatpay_tls_server: FakeWechatPay, wechatpay_tls_client: Client
) -> None:
    node = wechatpay_tls_client[SEND]
    first = fields(await node.post(security=True, xml=coupon(wechatpay_tls_server, "7")))
    again = fields(await node.post(security=True, xml=coupon(wechatpay_tls_server, "7")))
    assert again["coupon_id"] == first["coupon_id"]
    assert again["nonce_str"] != first["nonce_str"]  # a fresh, signed answer
    query = await wechatpay_tls_client[QUERY].post(xml=stock(wechatpay_tls_server))
    assert fields(query)["is_send_num"] == "1"
    with pytest.raises(APIError) as info:
        await node.post(security=True, xml=coupon(wechatpay_tls_server, "7", openid="o-2"))
    assert info.value.err_code == "PARAM_ERROR"


async def test_hmac_sha256_requests_get_hmac_signed_answers(
    wechatpay_tls_server: FakeWechatPay, wechatpay_tls_client: Client
) -> None:
    xml = {**stock(wechatpay_tls_server), "sign_type": "HMAC-SHA256"}
    answer = fields(await wechatpay_tls_client[QUERY].post(xml=xml))
    assert len(answer["sign"]) == 64
    secret = wechatpay_tls_server.merchant.secret
    assert answer["sign"] == sign_fields(answer, secret, "HMAC-SHA256")
    sent = wechatpay_tls_server.requests[-1].data
    assert sent["sign"] == sign_fields(sent, secret, "HMAC-SHA256")


async def test_non_security_v2_call_works_over_plain_http(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    answer = fields(await wechatpay_client[QUERY].post(xml=stock(wechatpay_server)))
    assert answer["result_code"] == "SUCCESS"
    assert wechatpay_server.base_url.startswith("http://")


async def test_unsigned_endpoint_answer_is_accepted_without_sign(
    wechatpay_tls_server: FakeWechatPay, wechatpay_tls_client: Client
) -> None:
    # Red packets answer without `sign`; the client knows, the user does nothing.
    wechatpay_tls_server.route(
        "POST", "v2/mmpaymkttransfers/sendredpack", lambda r: {"send_listid": "1000041701"}
    )
    resp = await wechatpay_tls_client.v2.mmpaymkttransfers.sendredpack.post(
        security=True,
        xml={"mch_billno": "b1", "mch_id": wechatpay_tls_server.merchant.mchid, "total_amount": 1},
    )
    assert "sign" not in fields(resp)
    assert fields(resp)["send_listid"] == "1000041701"


# --- mutual TLS ------------------------------------------------------------------------------


async def test_security_without_configured_certificate_fails_before_sending(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    with pytest.raises(InvalidArgumentError, match="need the merchant API certificate"):
        await wechatpay_client[SEND].post(security=True, xml=coupon(wechatpay_server))
    assert wechatpay_server.requests == []
    assert wechatpay_server.connections == 0


def test_security_without_configured_certificate_fails_before_sending_sync(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    with pytest.raises(InvalidArgumentError, match="merchant_cert"):
        wechatpay_client[SEND].post_sync(security=True, xml=coupon(wechatpay_server))
    assert wechatpay_server.requests == []


async def test_certificate_endpoint_without_certificate_is_refused_with_ca_error(
    wechatpay_tls_server: FakeWechatPay, no_cert_client: Client
) -> None:
    with pytest.raises(APIError) as info:
        await no_cert_client[SEND].post(xml=coupon(wechatpay_tls_server))  # no security=True
    assert info.value.err_code == "CA_ERROR"
    assert "请求未携带证书" in (info.value.err_code_des or "")
    assert wechatpay_tls_server.requests[-1].tls_client_cert is False
    # nothing was sent from the stock
    query = await no_cert_client[QUERY].post(xml=stock(wechatpay_tls_server))
    assert fields(query)["is_send_num"] == "0"


async def test_certificate_from_another_ca_fails_the_handshake(
    wechatpay_tls_server: FakeWechatPay,
) -> None:
    m = wechatpay_tls_server.merchant
    foreign = TestCA("not the test CA").client_pem(m.mchid, m.private_key)
    async with wechatpay_tls_server.client(merchant_cert=foreign) as client:
        with pytest.raises(httpx.TransportError, match="merchant_cert"):
            await client[SEND].post(security=True, xml=coupon(wechatpay_tls_server))
        # the plain pool is unaffected: it presents no certificate
        assert (await client[QUERY].post(xml=stock(wechatpay_tls_server))).status_code == 200
    assert [r.template for r in wechatpay_tls_server.requests] == [QUERY]


async def test_untrusted_server_certificate_is_reported_without_blaming_merchant_cert(
    wechatpay_tls_server: FakeWechatPay,
) -> None:
    untrusting = TestCA("not the server's CA").client_context()
    async with wechatpay_tls_server.client(verify=untrusting) as client:
        with pytest.raises(httpx.TransportError) as info:
            await client[SEND].post(security=True, xml=coupon(wechatpay_tls_server))
    message = str(info.value)
    assert "the server's certificate did not verify" in message
    assert "verify=" in message
    assert "merchant_cert" not in message
    assert wechatpay_tls_server.requests == []


async def test_another_merchants_certificate_is_refused(
    wechatpay_tls_server: FakeWechatPay, other_merchant: Merchant
) -> None:
    assert wechatpay_tls_server.ca is not None
    # Issued by the right CA, but to another mchid (and key).
    cert = wechatpay_tls_server.ca.client_pem(other_merchant.mchid, other_merchant.private_key)
    client = wechatpay_tls_server.client(
        merchant_cert=cert, merchant_key=private_pem(other_merchant.private_key)
    )
    with pytest.raises(APIError) as info:
        await client[SEND].post(security=True, xml=coupon(wechatpay_tls_server))
    assert info.value.err_code == "CA_ERROR"
    assert "不匹配" in (info.value.err_code_des or "")
    await client.aclose()


async def test_security_over_plain_http_is_refused(
    wechatpay_server: FakeWechatPay, other_merchant: Merchant
) -> None:
    cert = TestCA().client_pem(
        wechatpay_server.merchant.mchid, wechatpay_server.merchant.private_key
    )
    async with wechatpay_server.client(merchant_cert=cert) as client:
        with pytest.raises(APIError) as info:
            await client[SEND].post(security=True, xml=coupon(wechatpay_server))
    assert info.value.err_code == "CA_ERROR"


async def test_mtls_and_plain_requests_use_separate_pools(
    wechatpay_tls_server: FakeWechatPay, wechatpay_tls_client: Client
) -> None:
    c, server = wechatpay_tls_client, wechatpay_tls_server
    for i in range(3):
        await c[QUERY].post(xml=stock(server))
        await c[SEND].post(security=True, xml=coupon(server, f"p{i}"))
        await c.v3.marketing.favor.users._openid_.coupons.get(openid="o", query={"appid": APPID})
    assert server.connections == 2
    secure = [r.tls_client_cert for r in server.requests]
    assert secure == [False, True, False] * 3


async def test_pkcs12_certificate_with_passphrase(
    wechatpay_tls_server: FakeWechatPay, tmp_path: Path
) -> None:
    m = wechatpay_tls_server.merchant
    cert = x509.load_pem_x509_certificate(merchant_cert_pem(wechatpay_tls_server))
    p12 = pkcs12.serialize_key_and_certificates(
        b"apiclient",
        m.private_key,
        cert,
        None,
        serialization.BestAvailableEncryption(m.mchid.encode()),
    )
    path = tmp_path / "apiclient_cert.p12"
    path.write_bytes(p12)
    for source in (p12, path, str(path), f"file://{path}"):
        client = wechatpay_tls_server.client(
            merchant_cert=source, merchant_key=None, merchant_key_password=m.mchid
        )
        assert client.config.merchant_identity is not None
        assert client.config.merchant_identity.serial == crypto.certificate_serial(cert)
    answer = fields(await client[SEND].post(security=True, xml=coupon(wechatpay_tls_server)))
    assert answer["result_code"] == "SUCCESS"
    await client.aclose()

    with pytest.raises(InvalidArgumentError, match="wrong merchant_key_password") as info:
        wechatpay_tls_server.client(
            merchant_cert=p12, merchant_key=None, merchant_key_password="not-it"
        )
    assert "not-it" not in str(info.value)
    with pytest.raises(InvalidArgumentError, match="uses the mchid"):
        wechatpay_tls_server.client(merchant_cert=path, merchant_key=None)
    with pytest.raises(InvalidArgumentError, match="leave merchant_key out"):
        wechatpay_tls_server.client(merchant_cert=p12, merchant_key_password=m.mchid)


async def test_encrypted_pem_key_with_password(
    wechatpay_tls_server: FakeWechatPay, tmp_path: Path
) -> None:
    m = wechatpay_tls_server.merchant
    key = m.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pass-phrase"),
    )
    cert_path = tmp_path / "apiclient_cert.pem"
    cert_path.write_bytes(merchant_cert_pem(wechatpay_tls_server))
    async with wechatpay_tls_server.client(
        merchant_cert=f"file://{cert_path}", merchant_key=key, merchant_key_password="pass-phrase"
    ) as client:
        answer = fields(await client[SEND].post(security=True, xml=coupon(wechatpay_tls_server)))
    assert answer["result_code"] == "SUCCESS"


async def test_combined_pem_file_and_der_certificate(
    wechatpay_tls_server: FakeWechatPay, tmp_path: Path
) -> None:
    server = wechatpay_tls_server
    pem = merchant_cert_pem(server)
    combined = tmp_path / "apiclient.pem"
    combined.write_bytes(private_pem(server.merchant.private_key) + pem)
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    clients = [
        server.client(merchant_cert=combined, merchant_key=None, private_key=None, serial=None),
        server.client(merchant_cert=der),
    ]
    for i, client in enumerate(clients):
        async with client:
            resp = await client[SEND].post(security=True, xml=coupon(server, f"c{i}"))
        assert fields(resp)["result_code"] == "SUCCESS"


async def test_merchant_key_defaults_to_private_key(wechatpay_tls_server: FakeWechatPay) -> None:
    async with wechatpay_tls_server.client(merchant_key=None) as client:
        answer = fields(await client[SEND].post(security=True, xml=coupon(wechatpay_tls_server)))
    assert answer["result_code"] == "SUCCESS"


def test_bad_merchant_certificates_fail_at_construction(
    wechatpay_tls_server: FakeWechatPay, other_merchant: Merchant, tmp_path: Path
) -> None:
    server = wechatpay_tls_server
    other_key = private_pem(other_merchant.private_key)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"merchant_key": other_key}, "merchant_key is not the key of merchant_cert"),
        ({"merchant_cert": str(tmp_path / "missing.pem")}, "missing.pem cannot be read"),
        ({"merchant_cert": f"file://{tmp_path}/missing.pem"}, "cannot be read"),
        ({"merchant_cert": b"not a certificate"}, "is neither a PEM/DER certificate"),
        ({"merchant_cert": other_key}, "holds no PEM CERTIFICATE"),
        ({"merchant_cert": 42}, "got int"),
        ({"merchant_cert": None, "merchant_key": other_key}, "merchant_key is given but"),
        (
            {"merchant_key": None, "private_key": None, "serial": None},
            "merchant_key is required",
        ),
    ]
    for overrides, message in cases:
        with pytest.raises(InvalidArgumentError, match=message) as info:
            server.client(**overrides)
        assert "PRIVATE KEY" not in str(info.value)
        assert server.merchant.secret not in str(info.value)
    assert server.requests == []


async def test_custom_transport_is_refused_for_security_requests(
    wechatpay_tls_server: FakeWechatPay,
) -> None:
    transport = httpx.AsyncHTTPTransport(verify=wechatpay_tls_server.ca.client_context())  # type: ignore[union-attr]
    async with wechatpay_tls_server.client(transport=transport) as client:
        assert (await client[QUERY].post(xml=stock(wechatpay_tls_server))).status_code == 200
        with pytest.raises(InvalidArgumentError, match="custom transport"):
            await client[SEND].post(security=True, xml=coupon(wechatpay_tls_server))
    assert len(wechatpay_tls_server.requests) == 1


def test_identity_repr_shows_no_key(wechatpay_tls_client: Client) -> None:
    identity = wechatpay_tls_client.config.merchant_identity
    assert identity is not None
    text = repr(identity) + repr(wechatpay_tls_client.config) + repr(wechatpay_tls_client)
    assert "PRIVATE" not in text and "_key" not in text
    assert identity.serial in repr(identity)


# --- a client without APIv3 configuration ---------------------------------------------------


async def test_v2_only_client(wechatpay_tls_server: FakeWechatPay) -> None:
    server = wechatpay_tls_server
    m = server.merchant
    assert server.ca is not None
    client = Client(
        mchid=m.mchid,
        secret=m.secret,
        merchant_cert=merchant_cert_pem(server),
        merchant_key=private_pem(m.private_key),
        base_url=server.base_url,
        verify=server.ca.client_context(),
    )
    async with client:
        sent = fields(await client[SEND].post(security=True, xml=coupon(server)))
        assert sent["result_code"] == "SUCCESS"
        assert fields(await client[QUERY].post(xml=stock(server)))["is_send_num"] == "1"
        with pytest.raises(InvalidArgumentError, match="missing: serial, private_key"):
            await client.v3.marketing.favor.users._openid_.coupons.get(openid="o")
    assert [r.template for r in server.requests] == [SEND, QUERY]


# --- answers that must not be trusted -------------------------------------------------------


async def test_malformed_xml_answer_raises(
    wechatpay_tls_server: FakeWechatPay, wechatpay_tls_client: Client
) -> None:
    wechatpay_tls_server.misbehave("v2_bad_xml")
    with pytest.raises(VerificationError, match="not well-formed"):
        await wechatpay_tls_client[QUERY].post(xml=stock(wechatpay_tls_server))


async def test_html_404_page_raises_api_error(
    wechatpay_tls_server: FakeWechatPay, wechatpay_tls_client: Client
) -> None:
    wechatpay_tls_server.misbehave("v2_not_xml")
    with pytest.raises(APIError) as info:
        await wechatpay_tls_client[QUERY].post(xml=stock(wechatpay_tls_server))
    assert info.value.status_code == 404
    with pytest.raises(APIError) as info:  # an endpoint the server does not have
        await wechatpay_tls_client.v2.pay.nosuchapi.post(xml=stock(wechatpay_tls_server))
    assert info.value.status_code == 404


async def test_html_page_with_status_200_is_not_trusted(
    wechatpay_tls_server: FakeWechatPay, wechatpay_tls_client: Client
) -> None:
    page = b"<html><body>maintenance</body></html>"
    wechatpay_tls_server.route("POST", QUERY, lambda r: Reply(200, body=page))
    with pytest.raises(VerificationError, match="HTML page"):
        await wechatpay_tls_client[QUERY].post(xml=stock(wechatpay_tls_server))


@pytest.mark.parametrize(
    ("fault", "message"),
    [("v2_wrong_sign", "sign does not match"), ("v2_unsigned", "has no sign")],
)
async def test_answer_with_bad_or_missing_sign_raises(
    wechatpay_tls_server: FakeWechatPay, wechatpay_tls_client: Client, fault: str, message: str
) -> None:
    wechatpay_tls_server.misbehave(fault)
    with pytest.raises(VerificationError, match=message):
        await wechatpay_tls_client[SEND].post(security=True, xml=coupon(wechatpay_tls_server))
    # the next answer is fine again
    resp = await wechatpay_tls_client[SEND].post(security=True, xml=coupon(wechatpay_tls_server))
    assert fields(resp)["result_code"] == "SUCCESS"


async def test_fail_codes_raise_api_error(
    wechatpay_tls_server: FakeWechatPay, wechatpay_tls_client: Client
) -> None:
    wechatpay_tls_server.misbehave("v2_fail")
    with pytest.raises(APIError) as info:
        await wechatpay_tls_client[QUERY].post(xml=stock(wechatpay_tls_server))
    error = info.value
    assert (error.return_code, error.err_code, error.code) == (
        "SUCCESS",
        "SYSTEMERROR",
        "SYSTEMERROR",
    )
    assert error.err_code_des == error.message == "系统繁忙，请稍后再试"

    wechatpay_tls_server.route(
        "POST",
        QUERY,
        lambda r: Reply(
            xml={"result_code": "FAIL", "err_code": "NOTENOUGH", "err_code_des": "余额不足"}
        ),
    )
    with pytest.raises(APIError) as info:
        await wechatpay_tls_client[QUERY].post(xml=stock(wechatpay_tls_server))
    assert (info.value.err_code, info.value.message) == ("NOTENOUGH", "余额不足")
    assert b"<sign>" in info.value.response.content  # a result_code FAIL answer is signed

    wechatpay_tls_server.misbehave("status_500")
    with pytest.raises(APIError) as info:
        await wechatpay_tls_client[QUERY].post(xml=stock(wechatpay_tls_server))
    assert (info.value.status_code, info.value.return_code) == (500, "FAIL")


async def test_request_signed_with_wrong_secret_gets_sign_error(
    wechatpay_tls_server: FakeWechatPay,
) -> None:
    async with wechatpay_tls_server.client(secret="0" * 32) as client:
        with pytest.raises(APIError) as info:
            await client[QUERY].post(xml=stock(wechatpay_tls_server))
    assert (info.value.return_code, info.value.return_msg) == ("FAIL", "签名错误")
    assert "0" * 32 not in str(info.value)


async def test_dropped_connection_and_slow_answer(
    wechatpay_tls_server: FakeWechatPay, wechatpay_tls_client: Client
) -> None:
    wechatpay_tls_server.misbehave("close_connection")
    with pytest.raises(httpx.TransportError):
        await wechatpay_tls_client[QUERY].post(xml=stock(wechatpay_tls_server))
    wechatpay_tls_server.misbehave("slow", delay=1.0)
    with pytest.raises(httpx.ReadTimeout):
        await wechatpay_tls_client[QUERY].post(xml=stock(wechatpay_tls_server), timeout=0.2)


# --- bad call input: nothing is sent --------------------------------------------------------


async def test_bad_v2_input_sends_nothing(
    wechatpay_tls_server: FakeWechatPay, wechatpay_tls_client: Client
) -> None:
    server = wechatpay_tls_server
    node = wechatpay_tls_client[QUERY]
    with pytest.raises(InvalidArgumentError, match="sign_type 'SHA1' is not supported"):
        await node.post(xml={**stock(server), "sign_type": "SHA1"})
    with pytest.raises(InvalidArgumentError, match="does not match the client's mchid"):
        await node.post(xml={**stock(server), "mch_id": "1900000999"})
    for value, kind in ((True, "bool"), (1.5, "float"), ({"a": 1}, "dict"), ([1], "list")):
        with pytest.raises(InvalidArgumentError, match=f"'coupon_stock_id' is a {kind}"):
            await node.post(xml={**stock(server), "coupon_stock_id": value})
    with pytest.raises(InvalidArgumentError, match="json= is for APIv3"):
        await node.post(json=stock(server))
    async with server.client(secret=None) as no_secret:
        with pytest.raises(InvalidArgumentError, match="secret"):
            await no_secret[QUERY].post(xml=stock(server))
        with pytest.raises(InvalidArgumentError, match="secret"):
            await no_secret[SEND].post(security=True, xml=coupon(server))
    assert server.requests == []


def test_bad_v2_input_sends_nothing_sync(wechatpay_tls_server: FakeWechatPay) -> None:
    with wechatpay_tls_server.client(secret=None) as client:
        with pytest.raises(InvalidArgumentError, match="secret"):
            client[QUERY].post_sync(xml=stock(wechatpay_tls_server))
    with wechatpay_tls_server.client() as client:
        with pytest.raises(InvalidArgumentError, match="'openid_count' is a bool"):
            client[SEND].post_sync(
                security=True, xml=coupon(wechatpay_tls_server, openid_count=True)
            )
    assert wechatpay_tls_server.requests == []


async def test_int_values_are_decimal_and_none_is_left_out(
    wechatpay_tls_server: FakeWechatPay, wechatpay_tls_client: Client
) -> None:
    xml = coupon(wechatpay_tls_server, openid_count=1, device_info=None, op_user_id="操作员 <1>")
    await wechatpay_tls_client[SEND].post(security=True, xml=xml)
    sent = wechatpay_tls_server.requests[-1]
    assert sent.data["openid_count"] == "1"
    assert "device_info" not in sent.data
    assert sent.data["op_user_id"] == "操作员 <1>"
    assert b"<![CDATA[" in sent.body
