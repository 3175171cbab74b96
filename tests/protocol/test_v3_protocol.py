from __future__ import annotations

import pytest
from httpx import Headers

from wechatpay_chain import VerificationError
from wechatpay_chain.protocol.v3 import (
    authorization,
    parse_authorization,
    request_message,
    response_message,
    signed_headers,
)


def test_request_message_is_five_lines() -> None:
    message = request_message("POST", "/v3/x?a=1", "1554208460", "593BEC0C", '{"a":"中"}'.encode())
    assert message == 'POST\n/v3/x?a=1\n1554208460\n593BEC0C\n{"a":"中"}\n'.encode()


def test_response_message_is_three_lines() -> None:
    assert response_message("1", "n", b"") == b"1\nn\n\n"


def test_authorization_round_trips() -> None:
    value = authorization("1900000001", "ABC", "1554208460", "NONCE", "c2ln")
    assert value.startswith('WECHATPAY2-SHA256-RSA2048 mchid="1900000001",')
    fields = parse_authorization(value)
    assert fields == {
        "mchid": "1900000001",
        "serial_no": "ABC",
        "timestamp": "1554208460",
        "nonce_str": "NONCE",
        "signature": "c2ln",
    }


@pytest.mark.parametrize(
    "value",
    ["Basic abc", "WECHATPAY2-SHA256-RSA2048 mchid=1", 'WECHATPAY2-SHA256-RSA2048 mchid="1"'],
)
def test_malformed_authorization_is_rejected(value: str) -> None:
    with pytest.raises(VerificationError):
        parse_authorization(value)


def _headers(**changes: str | None) -> Headers:
    base = {
        "wechatpay-timestamp": "1000",
        "wechatpay-nonce": "n",
        "wechatpay-signature": "s",
        "wechatpay-serial": "PUB_KEY_ID_1",
    }
    for key, value in changes.items():
        name = "wechatpay-" + key
        if value is None:
            base.pop(name)
        else:
            base[name] = value
    return Headers(base)


def test_signed_headers_read_case_insensitively() -> None:
    signed = signed_headers(_headers(), now=1000)
    assert (signed.timestamp, signed.nonce, signed.serial) == ("1000", "n", "PUB_KEY_ID_1")


@pytest.mark.parametrize("missing", ["timestamp", "nonce", "signature", "serial"])
def test_each_signature_header_is_required(missing: str) -> None:
    with pytest.raises(VerificationError, match="missing Wechatpay-"):
        signed_headers(_headers(**{missing: None}), now=1000)


def test_skew_of_300_seconds_passes_and_301_fails() -> None:
    signed_headers(_headers(), now=1300)
    signed_headers(_headers(), now=700)
    with pytest.raises(VerificationError, match="301 s away"):
        signed_headers(_headers(), now=1301)


def test_other_signature_types_are_rejected() -> None:
    headers = _headers()
    headers["Wechatpay-Signature-Type"] = "WECHATPAY2-SM2-WITH-SM3"
    with pytest.raises(VerificationError, match="not supported"):
        signed_headers(headers, now=1000)


def test_non_numeric_timestamp_is_rejected() -> None:
    with pytest.raises(VerificationError, match="unix time"):
        signed_headers(_headers(timestamp="1e9"), now=1000)
