"""Client-side payment parameters: what the merchant server hands to the JSAPI / mini program
``requestPayment`` or to the APP SDK after placing an order.

Pure functions; ``timestamp`` and ``nonce`` may be passed in for reproducible output.
"""

from __future__ import annotations

from .._exceptions import InvalidArgumentError
from ..crypto import PrivateKeyLike, load_private_key, sign_sha256_rsa
from .formatter import Formatter
from .v2 import SIGN_TYPES, sign_fields

__all__ = ["app_params", "app_params_v2", "jsapi_params", "jsapi_params_v2"]

_PREPAY_PREFIX = "prepay_id="
_APP_PACKAGE = "Sign=WXPay"


def _require(**values: str) -> None:
    for name, value in values.items():
        if not isinstance(value, str) or not value:
            raise InvalidArgumentError(f"{name} must be a non-empty string")


def _package(prepay_id: str) -> str:
    # Accept the id alone or an already formed "prepay_id=..." package.
    return prepay_id if prepay_id.startswith(_PREPAY_PREFIX) else _PREPAY_PREFIX + prepay_id


def _check_sign_type(sign_type: str) -> None:
    if sign_type not in SIGN_TYPES:
        raise InvalidArgumentError(
            f"sign_type {sign_type!r} is not supported; use one of {SIGN_TYPES}"
        )


def jsapi_params(
    appid: str,
    prepay_id: str,
    private_key: PrivateKeyLike,
    *,
    timestamp: str | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """APIv3 parameters for JSAPI / mini program ``requestPayment``, signed with RSA.

    ``paySign`` signs ``appId\\ntimeStamp\\nnonceStr\\npackage\\n``.
    """
    _require(appid=appid, prepay_id=prepay_id)
    key = load_private_key(private_key)
    params = {
        "appId": appid,
        "timeStamp": timestamp or Formatter.timestamp(),
        "nonceStr": nonce or Formatter.nonce(),
        "package": _package(prepay_id),
        "signType": "RSA",
    }
    message = Formatter.joined_by_line_feed(
        params["appId"], params["timeStamp"], params["nonceStr"], params["package"]
    )
    params["paySign"] = sign_sha256_rsa(message, key)
    return params


def app_params(
    appid: str,
    mchid: str,
    prepay_id: str,
    private_key: PrivateKeyLike,
    *,
    timestamp: str | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """APIv3 parameters for the APP SDK's ``PayReq``, signed with RSA.

    ``sign`` signs ``appid\\ntimestamp\\nnoncestr\\nprepayid\\n``.
    """
    _require(appid=appid, mchid=mchid, prepay_id=prepay_id)
    key = load_private_key(private_key)
    params = {
        "appid": appid,
        "partnerid": mchid,
        "prepayid": prepay_id,
        "package": _APP_PACKAGE,
        "noncestr": nonce or Formatter.nonce(),
        "timestamp": timestamp or Formatter.timestamp(),
    }
    message = Formatter.joined_by_line_feed(
        params["appid"], params["timestamp"], params["noncestr"], params["prepayid"]
    )
    params["sign"] = sign_sha256_rsa(message, key)
    return params


def jsapi_params_v2(
    appid: str,
    prepay_id: str,
    secret: str,
    *,
    sign_type: str = "MD5",
    timestamp: str | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """APIv2 parameters for JSAPI ``chooseWXPay`` / ``requestPayment``.

    ``paySign`` is the APIv2 sign (``sign_type``: MD5 or HMAC-SHA256) of the five other fields.
    """
    _require(appid=appid, prepay_id=prepay_id, secret=secret)
    _check_sign_type(sign_type)
    params = {
        "appId": appid,
        "timeStamp": timestamp or Formatter.timestamp(),
        "nonceStr": nonce or Formatter.nonce(),
        "package": _package(prepay_id),
        "signType": sign_type,
    }
    params["paySign"] = sign_fields(params, secret, sign_type)
    return params


def app_params_v2(
    appid: str,
    partnerid: str,
    prepayid: str,
    secret: str,
    *,
    sign_type: str = "MD5",
    timestamp: str | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """APIv2 parameters for the APP SDK's ``PayReq``; ``sign`` is the APIv2 sign of the rest."""
    _require(appid=appid, partnerid=partnerid, prepayid=prepayid, secret=secret)
    _check_sign_type(sign_type)
    params = {
        "appid": appid,
        "partnerid": partnerid,
        "prepayid": prepayid,
        "package": _APP_PACKAGE,
        "noncestr": nonce or Formatter.nonce(),
        "timestamp": timestamp or Formatter.timestamp(),
    }
    params["sign"] = sign_fields(params, secret, sign_type)
    return params
