"""APIv3 protocol logic (sans-I/O): the signed message, the Authorization header, answer checks.

Nothing here reads a clock, a socket or a file: callers pass ``now`` and the bytes. The client,
the notification verifier, the CLI and the fake server all share these functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from .._exceptions import VerificationError
from ..transport.models import header_items

__all__ = [
    "AUTH_SCHEME",
    "MAX_SKEW",
    "SignedHeaders",
    "authorization",
    "parse_authorization",
    "request_message",
    "response_message",
    "signed_headers",
]

AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
#: Largest accepted difference, in seconds, between an answer's timestamp and our clock.
MAX_SKEW = 300

_LF = b"\n"


def request_message(method: str, target: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """What the merchant signs: ``METHOD\\nTARGET\\nTIMESTAMP\\nNONCE\\nBODY\\n``.

    ``target`` is the exact path and query sent; ``body`` the exact bytes sent (empty for GET).
    """
    return b"".join(
        (
            method.encode("ascii"),
            _LF,
            target.encode("utf-8"),
            _LF,
            timestamp.encode("ascii"),
            _LF,
            nonce.encode("ascii"),
            _LF,
            body,
            _LF,
        )
    )


def response_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What WeChat Pay signs in an answer or a notification: ``TIMESTAMP\\nNONCE\\nBODY\\n``."""
    return b"".join((timestamp.encode("utf-8"), _LF, nonce.encode("utf-8"), _LF, body, _LF))


def authorization(mchid: str, serial: str, timestamp: str, nonce: str, signature: str) -> str:
    """The value of the ``Authorization`` header of a signed APIv3 request."""
    return (
        f'{AUTH_SCHEME} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial}"'
    )


def parse_authorization(value: str) -> dict[str, str]:
    """The fields of an ``Authorization`` header; raises VerificationError when malformed."""
    scheme, _, rest = value.partition(" ")
    if scheme != AUTH_SCHEME:
        raise VerificationError(f"authorization scheme must be {AUTH_SCHEME}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, raw = part.strip().partition("=")
        if not sep or len(raw) < 2 or raw[0] != '"' or raw[-1] != '"':
            raise VerificationError("authorization header is malformed")
        fields[key] = raw[1:-1]
    for required in ("mchid", "serial_no", "timestamp", "nonce_str", "signature"):
        if not fields.get(required):
            raise VerificationError(f"authorization header lacks {required}")
    return fields


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    """The four ``Wechatpay-*`` headers of a signed answer or notification."""

    timestamp: str
    nonce: str
    signature: str
    serial: str
    signature_type: str


_SIGNED_NAMES = (
    "Wechatpay-Timestamp",
    "Wechatpay-Nonce",
    "Wechatpay-Signature",
    "Wechatpay-Serial",
    "Wechatpay-Signature-Type",
)
_SIGNED_INDEX = {name.lower().encode("ascii"): i for i, name in enumerate(_SIGNED_NAMES)}


def _signed_values(headers: Mapping[str, str]) -> list[str | None]:
    """The five ``Wechatpay-*`` values; one pass over an httpx.Headers' raw list (five
    ``get`` calls would scan it five times), repeated headers joined as ``get`` joins them."""
    if not isinstance(headers, httpx.Headers):
        return [headers.get(name) for name in _SIGNED_NAMES]
    found: list[bytes | None] = [None] * len(_SIGNED_NAMES)
    for _, lower, value in header_items(headers):
        i = _SIGNED_INDEX.get(lower)
        if i is not None:
            before = found[i]
            found[i] = value if before is None else before + b", " + value
    values: list[str | None] = []
    for raw in found:
        if raw is None:
            values.append(None)
            continue
        try:
            values.append(raw.decode("ascii"))  # what httpx gives for ASCII, without its scan
        except UnicodeDecodeError:
            values.append(raw.decode(headers.encoding))
    return values


def signed_headers(
    headers: Mapping[str, str], *, now: float, max_skew: int = MAX_SKEW
) -> SignedHeaders:
    """Check the presence, timestamp and signature type of the ``Wechatpay-*`` headers.

    ``headers`` must look names up case-insensitively (httpx.Headers does; so does the
    notification verifier's own mapping). Raises VerificationError naming what is wrong.
    """
    timestamp, nonce, signature, serial, signature_type = _signed_values(headers)
    missing = [
        name
        for name, value in (
            ("Wechatpay-Timestamp", timestamp),
            ("Wechatpay-Nonce", nonce),
            ("Wechatpay-Signature", signature),
            ("Wechatpay-Serial", serial),
        )
        if not value
    ]
    if missing:
        raise VerificationError(f"answer is not signed: missing {', '.join(missing)}")
    assert timestamp and nonce and signature and serial  # narrowed by the check above
    signature_type = signature_type or AUTH_SCHEME
    if signature_type != AUTH_SCHEME:
        raise VerificationError(
            f"Wechatpay-Signature-Type {signature_type!r} is not supported; expected {AUTH_SCHEME}"
        )
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise VerificationError("Wechatpay-Timestamp is not a unix time")
    skew = abs(now - int(timestamp))
    if skew > max_skew:
        raise VerificationError(
            f"Wechatpay-Timestamp is {int(skew)} s away from local time (limit {max_skew} s)"
        )
    return SignedHeaders(timestamp, nonce, signature, serial, signature_type)
