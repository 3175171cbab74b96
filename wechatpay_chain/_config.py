"""What a client knows about its merchant: identifiers, keys, trusted platform keys."""

from __future__ import annotations

import re
import threading
from collections.abc import Awaitable, Callable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypedDict

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from . import crypto
from ._exceptions import InvalidArgumentError
from .crypto.identity import load_merchant_identity
from .crypto.platform import PlatformKeys

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_ANSWER_SIZE",
    "Config",
    "MerchantOptions",
    "normalize_base_url",
]

DEFAULT_BASE_URL = "https://api.mch.weixin.qq.com/"
#: WeChat Pay's answers are a few KiB; downloads go to ``sink=`` (transport/decoding.py).
DEFAULT_MAX_ANSWER_SIZE = 16 * 1024 * 1024

_KEYS_LOCK = threading.Lock()
_HEX = re.compile(r"[0-9A-Fa-f]+")


@lru_cache(maxsize=64)
def normalize_base_url(value: str, what: str = "base_url") -> str:
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{what} must be a str URL, got {type(value).__name__}")
    url = httpx.URL(value)
    if url.scheme not in ("http", "https") or not url.host:
        raise InvalidArgumentError(f"{what} must be an http(s) URL with a host, got {value!r}")
    if url.query or url.fragment:
        raise InvalidArgumentError(f"{what} must not carry a query or fragment: {value!r}")
    return value if value.endswith("/") else value + "/"


def _optional_str(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(f"{name} must be a non-empty str, got {type(value).__name__}")
    return value


def _serial(value: object) -> str | None:
    """The merchant certificate serial: hex digits only, as the certificate shows it."""
    serial = _optional_str("serial", value)
    if serial is None:
        return None
    if not serial.strip():
        raise InvalidArgumentError("serial is blank; give the merchant API certificate serial")
    if _HEX.fullmatch(serial) is None:
        raise InvalidArgumentError(
            f"serial {serial[:64]!r} is not a certificate serial: hex digits only, without "
            "spaces, colons or a 0x prefix (e.g. 3775B6A45ACD588826D15E583A95F5DD00000000)"
        )
    return serial


class MerchantOptions(TypedDict, total=False):
    """Who the client is: the merchant keywords of ``Client`` and ``for_merchant`` (DESIGN §2)."""

    mchid: str | None
    serial: str | None
    private_key: crypto.PrivateKeyLike | None
    certs: Mapping[str, object] | None
    apiv3_key: str | bytes | None
    secret: str | None
    merchant_cert: object
    merchant_key: object
    merchant_key_password: str | bytes | None
    private_key_password: str | bytes | None
    base_url: str | None


class Config:
    """What a client knows about its merchant. Shared by derived clients; never printed."""

    __slots__ = (
        "apiv3_key",
        "base_url",
        "deadline",
        "encrypted",
        "max_answer_size",
        "mchid",
        "merchant_cert",
        "merchant_identity",
        "merchant_key",
        "merchant_key_password",
        "notifications",
        "parallel_signing",
        "platform_keys",
        "private_key",
        "resolve_serial",
        "secret",
        "serial",
    )

    def __init__(self, **options: Unpack[MerchantOptions]) -> None:
        unknown = sorted(set(options) - set(MerchantOptions.__annotations__))
        if unknown:
            raise InvalidArgumentError(f"unknown merchant option(s) {unknown}")
        mchid = options.get("mchid")
        serial = options.get("serial")
        private_key = options.get("private_key")
        certs = options.get("certs")
        merchant_cert = options.get("merchant_cert")
        merchant_key = options.get("merchant_key")
        merchant_key_password = options.get("merchant_key_password")
        private_key_password = options.get("private_key_password")
        self.mchid = _optional_str("mchid", mchid)
        if self.mchid is not None and self.mchid != self.mchid.strip():
            raise InvalidArgumentError("mchid has surrounding whitespace; give the bare mchid")
        self.serial = _serial(serial)
        if private_key_password is not None:
            if not isinstance(private_key_password, str | bytes):
                raise InvalidArgumentError(
                    "private_key_password must be str or bytes, got "
                    f"{type(private_key_password).__name__}"
                )
            if private_key is None:
                raise InvalidArgumentError("private_key_password is given but private_key is not")
        self.private_key: rsa.RSAPrivateKey | None = (
            None
            if private_key is None
            else crypto.load_private_key(
                private_key, passphrase=private_key_password, what="private_key"
            )
        )
        self.platform_keys = None if certs is None else PlatformKeys(certs)
        if self.serial is not None and self.platform_keys is not None:
            own = self.serial.upper()
            if any(known.upper() == own for known in self.platform_keys):
                raise InvalidArgumentError(
                    f"certs holds {self.serial}, the merchant's own certificate serial; certs "
                    "are WeChat Pay's platform certificates and public keys (PUB_KEY_ID_…)"
                )
        self.apiv3_key = self._apiv3_key(options.get("apiv3_key"))
        self.secret = _optional_str("secret", options.get("secret"))
        if self.secret is not None and len(self.secret) != 32:
            # The length only: the key itself never appears in a message.
            raise InvalidArgumentError(
                f"secret (the APIv2 key) must be 32 characters, got {len(self.secret)}"
            )
        self.merchant_cert = merchant_cert
        self.merchant_key = merchant_key
        self.merchant_key_password = merchant_key_password
        # Loaded and matched now, so a bad certificate fails here, not at the first request.
        self.merchant_identity = load_merchant_identity(
            merchant_cert,
            merchant_key,
            merchant_key_password,
            fallback_key=self.private_key,
            fallback_source=private_key,
        )
        self.base_url = normalize_base_url(options.get("base_url") or DEFAULT_BASE_URL)
        #: Awaited by the verifier on an answer signed by an unknown serial; True when the
        #: serial became trusted (set by ``client.certificates.auto_refresh()``).
        self.resolve_serial: Callable[[str], Awaitable[bool]] | None = None
        #: Set once ``client.encrypt`` was used: JSON bodies are then scanned for its values.
        self.encrypted = False
        #: Sign on spare cores while other requests are in flight (``Client(parallel_signing=)``).
        self.parallel_signing = True
        #: ``client.notifications`` of every client sharing this configuration (one
        #: de-duplication store per merchant), made on first use.
        self.notifications: Any = None
        #: Total seconds per call (``Client(deadline=)``, see middlewares/deadline.py), and
        #: the most bytes an answer read into memory may decode to (``max_answer_size=``,
        #: see transport/decoding.py).
        self.deadline: float | None = None
        self.max_answer_size = DEFAULT_MAX_ANSWER_SIZE
        # serial without private_key is allowed: the key may live in a KMS (with_signer).
        if self.private_key is not None and self.serial is None:
            raise InvalidArgumentError("private_key is given but serial is not: APIv3 needs both")
        if self.serial is not None and self.mchid is None:
            raise InvalidArgumentError("mchid is required with serial and private_key")

    @staticmethod
    def _apiv3_key(value: str | bytes | None) -> bytes | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = value.encode("utf-8")
        if not isinstance(value, bytes):
            raise InvalidArgumentError(
                f"apiv3_key must be str or bytes, got {type(value).__name__}"
            )
        if len(value) != 32:
            raise InvalidArgumentError(f"apiv3_key must be 32 bytes, got {len(value)}")
        return value

    def trusted_keys(self) -> PlatformKeys:
        """The platform keys answers are verified with, created empty when no certs were given
        (a certificate download fills them)."""
        keys = self.platform_keys
        if keys is None:
            with _KEYS_LOCK:
                keys = self.platform_keys
                if keys is None:
                    keys = self.platform_keys = PlatformKeys()
        return keys

    def require_v3(self, need_key: bool = True) -> tuple[str, str]:
        """``(mchid, serial)``, or a clear error naming what an APIv3 request lacks."""
        missing = [
            name
            for name, value in (
                ("mchid", self.mchid),
                ("serial", self.serial),
                ("private_key", self.private_key if need_key else True),
            )
            if value is None
        ]
        if missing:
            raise InvalidArgumentError(
                f"APIv3 requests need mchid, serial and private_key; missing: {', '.join(missing)}"
            )
        assert self.mchid is not None and self.serial is not None
        return self.mchid, self.serial

    def __repr__(self) -> str:
        return f"<Config mchid={self.mchid!r} serial={self.serial!r}>"
