"""Sensitive fields: encrypted with the platform key, the request names that key."""

from __future__ import annotations

from typing import Any

import pytest

from wechatpay_chain import APIError, Client, DecryptionError, InvalidArgumentError, crypto
from wechatpay_chain.protocol.paysign import jsapi_params_v2
from wechatpay_chain.testing import FakeRequest, FakeWechatPay, Reply

pytestmark = pytest.mark.anyio

TEMPLATE = "v3/profitsharing/receivers/add"


def install_receiver(server: FakeWechatPay) -> list[str]:
    """An endpoint that decrypts `name` with the platform key the header names."""
    names: list[str] = []
    keys = {
        server.public_key_signer.serial: server.public_key_signer.private_key,
        server.certificate_signer.serial: server.certificate_signer.private_key,
    }

    def add(request: FakeRequest) -> Any:
        key = keys.get(request.headers.get("Wechatpay-Serial", ""))
        if key is None:
            return Reply(400, json={"code": "PARAM_ERROR", "message": "Wechatpay-Serial"})
        names.append(crypto.rsa_decrypt_oaep(request.data["name"], key))
        return {"type": "MERCHANT_ID", "account": request.data["account"]}

    server.route("POST", TEMPLATE, add)
    return names


async def test_encrypted_field_adds_the_serial_header(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    names = install_receiver(wechatpay_server)
    name = wechatpay_client.encrypt("张三")
    assert name.serial == wechatpay_server.public_key_signer.serial
    assert "张三" not in repr(name)
    resp = await wechatpay_client.v3.profitsharing.receivers.add.post(
        json={"type": "MERCHANT_ID", "account": "1900000109", "name": name}
    )
    assert resp.json()["account"] == "1900000109"
    assert names == ["张三"]
    sent = wechatpay_server.requests[-1].headers["Wechatpay-Serial"]
    assert sent == wechatpay_server.public_key_signer.serial


async def test_body_without_encrypted_values_gets_no_serial(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    install_receiver(wechatpay_server)
    wechatpay_client.encrypt("x")  # the client now scans bodies
    with pytest.raises(APIError, match="Wechatpay-Serial"):
        await wechatpay_client[TEMPLATE].post(json={"account": "1", "name": "plain"})
    assert "Wechatpay-Serial" not in wechatpay_server.requests[-1].headers


async def test_conflicting_serial_header_is_refused_before_sending(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    name = wechatpay_client.encrypt("李四")
    with pytest.raises(InvalidArgumentError, match="does not name the key"):
        await wechatpay_client[TEMPLATE].post(
            json={"name": name}, headers={"Wechatpay-Serial": "OTHER"}
        )
    assert wechatpay_server.requests == []


def test_decrypt_round_trip_and_wrong_key(wechatpay_server: FakeWechatPay) -> None:
    client = wechatpay_server.client()
    public = wechatpay_server.merchant.private_key.public_key()
    assert client.decrypt(crypto.rsa_encrypt_oaep("13800138000", public)) == "13800138000"
    other = wechatpay_server.public_key_signer.private_key.public_key()
    with pytest.raises(DecryptionError) as info:
        client.decrypt(crypto.rsa_encrypt_oaep("13800138000", other))
    assert "13800138000" not in str(info.value)


def test_client_pay_params_verify(wechatpay_server: FakeWechatPay) -> None:
    client = wechatpay_server.client()
    params = client.jsapi_params("wx8888888888888888", "wx201410272009395522657a690389285100")
    assert params["package"] == "prepay_id=wx201410272009395522657a690389285100"
    signed = "\n".join(
        [params["appId"], params["timeStamp"], params["nonceStr"], params["package"], ""]
    )
    public = wechatpay_server.merchant.private_key.public_key()
    assert crypto.verify_sha256_rsa(signed.encode(), params["paySign"], public)
    app = client.app_params("wx8888888888888888", "wx2014")
    assert app["partnerid"] == wechatpay_server.merchant.mchid
    v2 = client.jsapi_params_v2("wx8888888888888888", "wx2014", sign_type="HMAC-SHA256")
    again = jsapi_params_v2(
        "wx8888888888888888",
        "wx2014",
        wechatpay_server.merchant.secret,
        sign_type="HMAC-SHA256",
        timestamp=v2["timeStamp"],
        nonce=v2["nonceStr"],
    )
    assert v2["paySign"] == again["paySign"]
