"""APIv3 protocol logic (sans-I/O): the signed message, the Authorization header, answer checks.

Nothing here reads a clock, a socket or a file: callers pass ``now`` and the bytes. The client,
the notification verifier, the CLI and the fake server all share these functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .._exceptions import VerificationError

__all__ = [
    "AUTH_SCHEME",
    "MAX_SKEW",
    "SIGNED_NAMES",
    "STATEMENT_DIGEST",
    "STATEMENT_PATHS",
    "UNSIGNED_V3_PATHS",
    "SignedHeaders",
    "authorization",
    "is_unsigned_v3",
    "parse_authorization",
    "parse_signed",
    "request_message",
    "response_message",
    "signed_headers",
    "statement_digest",
    "statement_message",
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


SIGNED_NAMES = (
    "Wechatpay-Timestamp",
    "Wechatpay-Nonce",
    "Wechatpay-Signature",
    "Wechatpay-Serial",
    "Wechatpay-Signature-Type",
)


def signed_headers(
    headers: Mapping[str, str], *, now: float, max_skew: int = MAX_SKEW
) -> SignedHeaders:
    """Check the presence, timestamp and signature type of the ``Wechatpay-*`` headers.

    ``headers`` must look names up case-insensitively (httpx.Headers does; so does the
    notification verifier's own mapping). Raises VerificationError naming what is wrong.
    """
    return parse_signed([headers.get(name) for name in SIGNED_NAMES], now=now, max_skew=max_skew)


def parse_signed(
    values: Sequence[str | None], *, now: float, max_skew: int = MAX_SKEW
) -> SignedHeaders:
    """``signed_headers`` over the five values already looked up, in ``SIGNED_NAMES`` order."""
    timestamp, nonce, signature, serial, signature_type = values
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
    # isascii: str.isdigit also accepts digits int() refuses (superscripts).
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise VerificationError("Wechatpay-Timestamp is not a unix time")
    skew = abs(now - int(timestamp))
    if skew > max_skew:
        raise VerificationError(
            f"Wechatpay-Timestamp is {int(skew)} s away from local time (limit {max_skew} s)"
        )
    return SignedHeaders(timestamp, nonce, signature, serial, signature_type)


#: APIv3 paths whose answers WeChat Pay does not sign (file downloads, GET only; see
#: ``is_unsigned_v3``). An entry ending in `/` covers one segment below it (`{media_id}`).
UNSIGNED_V3_PATHS: tuple[str, ...] = (
    "v3/billdownload/file",
    "v3/transferdownload/signfile",
    "v3/transferdownload/elecvoucherfile",
    "v3/merchant-service/images/",
    "v3/new-tax-control-fapiao/download-invoice-file",
    # Cross-border complaint images. (The statements are signed: see STATEMENT_PATHS.)
    "v3/global/merchant-service/images/",
)

#: Statement downloads (``GET``, under ``…/hk/`` or on ``apihk.mch.weixin.qq.com``): the
#: answer is the file, with its SHA-1 in ``Wechatpay-Statement-Sha1``, and the signature
#: covers ``{"sha1":"<that value>"}`` instead of the body (as the PHP SDK verifies it).
STATEMENT_PATHS: frozenset[str] = frozenset({"v3/statements", "v3/global/statements"})
STATEMENT_DIGEST = "Wechatpay-Statement-Sha1"


def statement_digest(value: str | None) -> str | None:
    """The ``Wechatpay-Statement-Sha1`` value, checked to be 40 hex digits; None if absent."""
    if value is None:
        return None
    if len(value) != 40 or not value.isascii():
        raise VerificationError(f"{STATEMENT_DIGEST} is not a SHA-1 hex digest")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = b""
    if len(raw) != 20:
        raise VerificationError(f"{STATEMENT_DIGEST} is not a SHA-1 hex digest")
    return value


def statement_message(digest: str) -> bytes:
    """What a statement answer's signature covers in place of the body."""
    return b'{"sha1":"' + digest.encode("ascii") + b'"}'


def is_unsigned_v3(path: str, method: str = "GET") -> bool:
    """Whether WeChat Pay answers ``method path`` unsigned: a GET of a file download.

    An entry ending in ``/`` is a folder of single-segment downloads (``images/{media_id}``),
    so ``POST v3/merchant-service/images/upload``, whose answer is signed, is not one.
    """
    if method != "GET" or not path.startswith(UNSIGNED_V3_PATHS):
        return False
    path = path.partition("?")[0]
    for known in UNSIGNED_V3_PATHS:
        if known.endswith("/"):
            rest = path[len(known) :] if path.startswith(known) else ""
            if rest and "/" not in rest:
                return True
        elif path == known:
            return True
    return False
