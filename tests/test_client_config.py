"""Bad configuration fails at construction with a clear error and no secret in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from wechatpay_chain import Client, InvalidArgumentError
from wechatpay_chain.testing import FakeWechatPay
from wechatpay_chain.testing._fake import private_pem


@pytest.fixture(scope="module")
def server() -> FakeWechatPay:
    return FakeWechatPay()  # keys only; not started


def options(server: FakeWechatPay, **changes: object) -> dict[str, object]:
    base = server.client_options()
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def test_valid_configuration_from_pem_file_url_and_key_object(
    server: FakeWechatPay, tmp_path: Path
) -> None:
    pem = private_pem(server.merchant.private_key)
    path = tmp_path / "apiclient_key.pem"
    path.write_bytes(pem)
    for key in (pem, pem.decode(), f"file://{path}", server.merchant.private_key):
        client = Client(**options(server, private_key=key))  # type: ignore[arg-type]
        assert client.config.private_key is not None


def test_repr_shows_no_secret(server: FakeWechatPay) -> None:
    client = Client(**options(server))  # type: ignore[arg-type]
    text = repr(client) + repr(client.config)
    assert server.merchant.mchid in text
    assert server.merchant.secret not in text
    assert server.merchant.apiv3_key not in text
    assert "PRIVATE KEY" not in text


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"private_key": "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----"},
            "private_key",
        ),
        ({"private_key": "file:///nonexistent/apiclient_key.pem"}, "cannot be read"),
        ({"serial": 1234}, "serial must be a non-empty str"),
        ({"mchid": 1900000001}, "mchid must be a non-empty str"),
        ({"certs": {}}, "certs is empty"),
        ({"certs": ["PUB_KEY_ID_1"]}, "certs must be a mapping"),
        ({"certs": {"PUB_KEY_ID_1": "not a key"}}, r"certs\['PUB_KEY_ID_1'\]: not a PEM"),
        ({"apiv3_key": "short"}, "apiv3_key must be 32 bytes, got 5"),
        ({"base_url": "ftp://example.com/"}, "base_url must be an http"),
        ({"serial": None, "mchid": "1"}, "private_key is given but serial is not"),
        ({"timeot": 3}, r"unknown Client option\(s\) \['timeot'\]"),
    ],
)
def test_bad_configuration_is_named(
    server: FakeWechatPay, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=message) as info:
        Client(**options(server, **changes))  # type: ignore[arg-type]
    assert "PRIVATE KEY-----\nMII" not in str(info.value)
    assert server.merchant.secret not in str(info.value)


def test_wrong_key_type_is_named(server: FakeWechatPay) -> None:
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(InvalidArgumentError, match="private_key") as info:
        Client(**options(server, private_key=ec_pem))  # type: ignore[arg-type]
    assert ec_pem.decode()[40:80] not in str(info.value)


def test_certificate_under_the_wrong_serial_is_refused(server: FakeWechatPay) -> None:
    cert = server.certificate_signer.public
    with pytest.raises(InvalidArgumentError, match="is a certificate with serial"):
        Client(**options(server, certs={"ABCDEF": cert}))  # type: ignore[arg-type]


async def _v3_call(client: Client) -> None:
    await client.v3.pay.transactions.native.post(json={"a": 1})


@pytest.mark.anyio
async def test_v3_call_without_v3_configuration_is_a_clear_error() -> None:
    client = Client(mchid="1900000001", secret="s" * 32)
    with pytest.raises(InvalidArgumentError, match="missing: serial, private_key"):
        await _v3_call(client)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-Count": 3}, "headers must map str to str; got str -> int for 'X-Count'"),
        ({"X-Name": "订单"}, "header 'X-Name' must be ASCII"),
        ({"Wechatpay-Serial": "PUB_KEY\r\nX-Evil: 1"}, None),
    ],
)
def test_bad_headers_are_refused_before_sending(
    wechatpay_server: FakeWechatPay, headers: dict[str, Any], message: str | None
) -> None:
    client = wechatpay_server.client()
    try:
        before = len(wechatpay_server.requests)
        with pytest.raises((InvalidArgumentError, httpx.LocalProtocolError)) as caught:
            client.v3.pay.transactions.native.post_sync(json={}, headers=headers)
        if message is not None:
            assert isinstance(caught.value, InvalidArgumentError)
            assert message in str(caught.value)
        assert "订单" not in str(caught.value)  # the value is not echoed back
        assert len(wechatpay_server.requests) == before  # nothing was sent
    finally:
        client.close()
