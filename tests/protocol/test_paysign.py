"""Client-side payment parameters: fields, and signatures checked independently."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from _keys_helpers import private_pem, rsa_key
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from wechatpay_chain import InvalidArgumentError
from wechatpay_chain.crypto import verify_sha256_rsa
from wechatpay_chain.protocol.paysign import (
    app_params,
    app_params_v2,
    jsapi_params,
    jsapi_params_v2,
)

KEY = rsa_key()
PUBLIC = KEY.public_key()
APPID = "wxd678efh567hg6787"
MCHID = "1230000109"
PREPAY_ID = "wx201410272009395522657a690389285100"
SECRET = "exposed_your_key_here_have_risks"
TS = "1414561699"
NONCE = "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"


def rsa_verifies(message: str, signature: str) -> bool:
    """Independent check with cryptography directly."""
    try:
        PUBLIC.verify(
            base64.b64decode(signature), message.encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except Exception:
        return False
    return True


def v2_sign(fields: dict[str, str], sign_type: str) -> str:
    """The APIv2 sign recomputed by hand from the documented rule."""
    message = "&".join(f"{k}={fields[k]}" for k in sorted(fields) if fields[k]) + f"&key={SECRET}"
    if sign_type == "HMAC-SHA256":
        return hmac.new(SECRET.encode(), message.encode(), hashlib.sha256).hexdigest().upper()
    return hashlib.md5(message.encode()).hexdigest().upper()


def test_jsapi_params_are_signed_over_the_four_lines() -> None:
    params = jsapi_params(APPID, PREPAY_ID, KEY, timestamp=TS, nonce=NONCE)
    assert list(params) == ["appId", "timeStamp", "nonceStr", "package", "signType", "paySign"]
    assert params["package"] == f"prepay_id={PREPAY_ID}"
    assert params["signType"] == "RSA"
    message = f"{APPID}\n{TS}\n{NONCE}\nprepay_id={PREPAY_ID}\n"
    assert rsa_verifies(message, params["paySign"])
    assert verify_sha256_rsa(message, params["paySign"], PUBLIC)


def test_jsapi_params_accept_a_ready_package() -> None:
    params = jsapi_params(APPID, f"prepay_id={PREPAY_ID}", KEY, timestamp=TS, nonce=NONCE)
    assert params == jsapi_params(APPID, PREPAY_ID, KEY, timestamp=TS, nonce=NONCE)


def test_jsapi_params_fill_timestamp_and_nonce() -> None:
    params = jsapi_params(APPID, PREPAY_ID, private_pem(KEY))
    assert params["timeStamp"].isdigit()
    assert len(params["nonceStr"]) == 32
    message = f"{APPID}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n"
    assert rsa_verifies(message, params["paySign"])


def test_app_params_are_signed_over_appid_timestamp_nonce_prepayid() -> None:
    params = app_params(APPID, MCHID, PREPAY_ID, KEY, timestamp=TS, nonce=NONCE)
    assert {k: v for k, v in params.items() if k != "sign"} == {
        "appid": APPID,
        "partnerid": MCHID,
        "prepayid": PREPAY_ID,
        "package": "Sign=WXPay",
        "noncestr": NONCE,
        "timestamp": TS,
    }
    assert rsa_verifies(f"{APPID}\n{TS}\n{NONCE}\n{PREPAY_ID}\n", params["sign"])


@pytest.mark.parametrize("sign_type", ["MD5", "HMAC-SHA256"])
def test_jsapi_params_v2_sign_the_five_fields(sign_type: str) -> None:
    params = jsapi_params_v2(
        APPID, PREPAY_ID, SECRET, sign_type=sign_type, timestamp=TS, nonce=NONCE
    )
    assert list(params) == ["appId", "timeStamp", "nonceStr", "package", "signType", "paySign"]
    assert params["signType"] == sign_type
    fields = {k: v for k, v in params.items() if k != "paySign"}
    assert params["paySign"] == v2_sign(fields, sign_type)


def test_jsapi_params_v2_md5_known_value() -> None:
    params = jsapi_params_v2(APPID, PREPAY_ID, SECRET, timestamp=TS, nonce=NONCE)
    message = (
        f"appId={APPID}&nonceStr={NONCE}&package=prepay_id={PREPAY_ID}"
        f"&signType=MD5&timeStamp={TS}&key={SECRET}"
    )
    assert params["paySign"] == hashlib.md5(message.encode()).hexdigest().upper()


@pytest.mark.parametrize("sign_type", ["MD5", "HMAC-SHA256"])
def test_app_params_v2_sign_the_six_fields(sign_type: str) -> None:
    params = app_params_v2(
        APPID, MCHID, PREPAY_ID, SECRET, sign_type=sign_type, timestamp=TS, nonce=NONCE
    )
    assert params["package"] == "Sign=WXPay"
    assert list(params) == [
        "appid",
        "partnerid",
        "prepayid",
        "package",
        "noncestr",
        "timestamp",
        "sign",
    ]
    fields = {k: v for k, v in params.items() if k != "sign"}
    assert params["sign"] == v2_sign(fields, sign_type)


def test_unknown_sign_type_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="sign_type 'SHA1'"):
        jsapi_params_v2(APPID, PREPAY_ID, SECRET, sign_type="SHA1")
    with pytest.raises(InvalidArgumentError, match="sign_type"):
        app_params_v2(APPID, MCHID, PREPAY_ID, SECRET, sign_type="RSA")


def test_missing_identifiers_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="prepay_id"):
        jsapi_params(APPID, "", KEY)
    with pytest.raises(InvalidArgumentError, match="appid"):
        app_params("", MCHID, PREPAY_ID, KEY)
    with pytest.raises(InvalidArgumentError, match="secret") as info:
        jsapi_params_v2(APPID, PREPAY_ID, "")
    assert SECRET not in str(info.value)


def test_bad_private_key_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match=r"^private_key: "):
        jsapi_params(APPID, PREPAY_ID, "nope")
