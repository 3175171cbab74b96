"""APIv2 protocol logic (sans-I/O): field signing and answer verification."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

__all__ = ["SIGN_TYPES", "sign_fields"]

SIGN_TYPES = ("MD5", "HMAC-SHA256")


def sign_fields(fields: Mapping[str, object], secret: str, sign_type: str = "MD5") -> str:
    """The APIv2 ``sign`` of ``fields``: upper-case hex MD5 or HMAC-SHA256.

    Pairs are sorted bytewise by key; ``sign`` itself and empty or None values are skipped;
    ``&key=<secret>`` closes the message.
    """
    pairs = sorted(
        (k, str(v)) for k, v in fields.items() if k != "sign" and v is not None and str(v) != ""
    )
    message = "&".join(f"{k}={v}" for k, v in pairs) + "&key=" + secret
    data = message.encode("utf-8")
    if sign_type == "HMAC-SHA256":
        return hmac.new(secret.encode("utf-8"), data, hashlib.sha256).hexdigest().upper()
    if sign_type == "MD5":
        return hashlib.md5(data).hexdigest().upper()
    from ._exceptions import InvalidArgumentError

    raise InvalidArgumentError(f"sign_type {sign_type!r} is not supported; use one of {SIGN_TYPES}")
