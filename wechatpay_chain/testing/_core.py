"""What the fake server and its features share: merchants, signers, requests, replies, routes.

The features (certificates, files, notifications, APIv2, seeds) are written against
``Server``, the part of ``FakeWechatPay`` they use, so none of them imports the server.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

if TYPE_CHECKING:
    import httpx

__all__ = [
    "FAULTS",
    "PUBLIC_KEY_ID",
    "FakeRequest",
    "Handler",
    "Merchant",
    "PlatformSigner",
    "Reply",
    "Server",
    "generate_key",
]

#: What ``misbehave`` can make the server do to the next matching answers.
FAULTS = frozenset(
    {
        "tamper_signature",  # the signature no longer matches
        "tamper_body",  # the body is changed after signing
        "stale_timestamp",  # signed 6 minutes ago
        "unknown_serial",  # signed by a serial the client does not know
        "no_signature",  # no Wechatpay-* headers
        "status_500",  # 500 SYSTEM_ERROR (signed)
        "status_429",  # 429 FREQUENCY_LIMITED (signed)
        "slow",  # answer after `delay` seconds
        "close_connection",  # drop the connection without answering
        "reset_mid_answer",  # handle the request, send half the answer, then a TCP reset
        "v2_fail",  # APIv2: result_code FAIL, err_code SYSTEMERROR (signed)
        "v2_wrong_sign",  # APIv2: the answer's sign does not match
        "v2_unsigned",  # APIv2: a SUCCESS answer without sign
        "v2_not_xml",  # APIv2: a 404 HTML page instead of XML
        "v2_bad_xml",  # APIv2: XML that is not well-formed
    }
)

PUBLIC_KEY_ID = "PUB_KEY_ID_0114232134912410000000000000"


def _hex_serial(nbytes: int = 20) -> str:
    return secrets.token_hex(nbytes).upper().lstrip("0") or "1"


def generate_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def self_signed(
    key: rsa.RSAPrivateKey, serial: int, name: str, days: int = 365
) -> x509.Certificate:
    """A certificate like WeChat Pay's platform ones, for tests."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(slots=True)
class Merchant:
    """A merchant the fake server knows: its keys are generated unless given."""

    mchid: str
    serial: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    secret: str = field(repr=False)
    apiv3_key: str = field(repr=False)
    #: The public half of ``private_key``, derived once: every request signature needs it.
    public_key: rsa.RSAPublicKey = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.public_key = self.private_key.public_key()

    @classmethod
    def generate(cls, mchid: str = "1900000001") -> Merchant:
        return cls(
            mchid=mchid,
            serial=_hex_serial(),
            private_key=generate_key(),
            secret=secrets.token_hex(16),
            apiv3_key=secrets.token_hex(16),
        )


@dataclass(slots=True)
class PlatformSigner:
    """A key the fake server signs answers with, named by certificate serial or public-key id."""

    serial: str
    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate | None = None

    @property
    def public(self) -> bytes:
        if self.certificate is not None:
            return self.certificate.public_bytes(serialization.Encoding.PEM)
        return public_pem(self.private_key.public_key())


@dataclass(slots=True)
class FakeRequest:
    """A request as the fake server received and checked it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    template: str = ""
    params: dict[str, str] = field(default_factory=dict)
    mchid: str | None = None
    tls_client_cert: bool = False
    data: Any = None  # parsed JSON (APIv3) or XML fields (APIv2)
    body_file: Any = None  # a large body, spooled to a temporary file (body is then b"")

    @property
    def json(self) -> Any:
        return self.data

    def __repr__(self) -> str:
        # Bodies and headers carry signatures and personal data: the repr names the call only.
        return (
            f"<FakeRequest {self.method} {self.path} template={self.template!r} "
            f"mchid={self.mchid!r} {len(self.body)} bytes>"
        )


@dataclass(slots=True)
class Reply:
    """What a handler answers; a dict is shorthand for ``Reply(200, json=dict)``."""

    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: APIv2 answer fields, written as signed XML (a plain dict means the same for v2 routes).
    xml: Any = None


Handler = Callable[[FakeRequest], Any]


@dataclass(slots=True)
class _Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    names: tuple[str, ...]
    handler: Handler


@dataclass(slots=True)
class _Fault:
    kind: str
    remaining: int
    template: str | None
    delay: float
    #: ``fail()``: the answer to give instead of the route's own.
    reply: Reply | None = None


def _compile(template: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    names: list[str] = []
    regex = ""
    for piece in re.split(r"(\{[^{}]+\})", template):
        if piece.startswith("{") and piece.endswith("}"):
            names.append(piece[1:-1])
            regex += "([^/]+)"
        else:
            regex += re.escape(piece)
    return re.compile(regex + r"\Z"), tuple(names)


class Server(Protocol):
    """The part of ``FakeWechatPay`` the features use."""

    merchant: Merchant
    merchants: dict[str, Merchant]
    certificate_signer: PlatformSigner
    mode: str
    requests: list[FakeRequest]
    state: dict[str, Any]

    @property
    def base_url(self) -> str: ...

    @property
    def signer(self) -> PlatformSigner: ...

    @property
    def files(self) -> Any: ...

    def route(self, method: str, template: str, handler: Handler) -> None: ...

    def catch_all(self, enabled: bool = True) -> None: ...

    def next_id(self, prefix: str = "") -> str: ...

    def _take_fault(self, template: str) -> _Fault | None: ...

    def _match(self, method: str, path: str) -> tuple[_Route, dict[str, str]] | None: ...

    async def send_notification(
        self, url: str, event_type: str, resource: Any, **options: Any
    ) -> httpx.Response: ...
