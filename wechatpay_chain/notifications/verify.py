"""The verifier: ``client.notifications`` checks, decrypts, de-duplicates and answers."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from .. import crypto
from .._exceptions import (
    DecryptionError,
    InvalidArgumentError,
    NotificationError,
    VerificationError,
)
from ..protocol import jsonsafe
from ..protocol import v2 as _v2
from ..protocol import v3 as _v3
from ..protocol.transformer import Transformer
from .answers import Answer
from .dedup import Deduplicator, MemoryDeduplicator, finish_shielded
from .models import (
    KINDS,
    AnyNotification,
    Kind,
    Notification,
    V2PayNotification,
    V2RefundNotification,
)

if TYPE_CHECKING:
    from .._config import Config

__all__ = ["HeadersLike", "Notifications", "log_rejection"]

logger = logging.getLogger("wechatpay_chain.notifications")

#: The only resource algorithm WeChat Pay uses for APIv3 notifications.
RESOURCE_ALGORITHM = "AEAD_AES_256_GCM"


# --- input normalisation ----------------------------------------------------------------------
HeadersLike: TypeAlias = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]


class _Folded(dict[str, str]):
    """Header name (lower case) -> value; ``get`` folds the name it is asked for."""

    def get(self, key: str, default: Any = None) -> Any:
        return dict.get(self, key.lower(), default)


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _fold(headers: HeadersLike) -> _Folded:
    """The ``Wechatpay-*`` headers by lower-case name, from any mapping or list of pairs.

    A name given twice (in any case) with different values is refused: which one was
    signed cannot be told.
    """
    items: Iterable[tuple[str | bytes, str | bytes]]
    if isinstance(headers, Mapping):
        items = headers.items()
    elif isinstance(headers, (str, bytes)):
        raise InvalidArgumentError("headers must be a mapping or a list of (name, value) pairs")
    else:
        items = headers
    folded = _Folded()
    for name, value in items:
        key = _text(name).lower()
        if not key.startswith("wechatpay-"):
            continue
        text = _text(value).strip()
        previous = dict.get(folded, key)
        if previous is not None and previous != text:
            raise NotificationError("malformed", f"header {key} is given twice")
        folded[key] = text
    return folded


def _raw_body(body: object) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    raise InvalidArgumentError(
        f"body must be the raw request body as bytes (e.g. `await request.body()`), got "
        f"{type(body).__name__}: a decoded or re-serialised body cannot be verified"
    )


def _flat(fields: Mapping[str, Any], what: str, reason: str = "malformed") -> dict[str, str]:
    for key, value in fields.items():
        if not isinstance(value, str):
            raise NotificationError(reason, f"{what} field {key!r} is repeated or nested")
    return dict(fields)


def _require(fields: Mapping[str, Any], names: Iterable[str], what: str, reason: str) -> None:
    missing = [name for name in names if not fields.get(name)]
    if missing:
        raise NotificationError(reason, f"{what} lacks {', '.join(missing)}")


# --- the verifier -----------------------------------------------------------------------------
class Notifications:
    """Verifies and decrypts notifications for one merchant (``client.notifications``).

    Needs ``certs`` and ``apiv3_key`` for APIv3, ``secret`` for APIv2; a missing one is an
    ``InvalidArgumentError`` (a configuration problem, answered 5xx so WeChat Pay re-sends).
    """

    def __init__(self, config: Config, *, max_skew: int = _v3.MAX_SKEW) -> None:
        if max_skew < 0:
            raise InvalidArgumentError(f"max_skew must not be negative, got {max_skew}")
        self._config = config
        self.max_skew = max_skew
        #: The de-duplication store ``handle`` uses unless told otherwise.
        self.dedup: Deduplicator = MemoryDeduplicator()
        self._refund_key: tuple[str, str] | None = None

    def __repr__(self) -> str:
        return f"<Notifications mchid={self._config.mchid!r} max_skew={self.max_skew}>"

    def require(self, kind: Kind) -> None:
        """Raise ``InvalidArgumentError`` unless the client can verify notifications of ``kind``."""
        if kind not in KINDS:
            raise InvalidArgumentError(f"kind must be one of {KINDS}, got {kind!r}")
        config = self._config
        if kind == "v3":
            if config.platform_keys is None:
                raise InvalidArgumentError(
                    "certs is required to verify APIv3 notifications: give the platform "
                    "certificate or public key (PUB_KEY_ID_…) WeChat Pay signs with"
                )
            if config.apiv3_key is None:
                raise InvalidArgumentError("apiv3_key is required to decrypt APIv3 notifications")
        elif not config.secret:
            raise InvalidArgumentError("secret (the APIv2 key) is required for APIv2 notifications")

    # --- APIv3 ------------------------------------------------------------------------------
    def parse(self, headers: HeadersLike, body: bytes, *, now: float | None = None) -> Notification:
        """Verify and decrypt an APIv3 notification; raise NotificationError if anything is off.

        ``headers`` is the request's headers in any mapping (any case) or list of pairs;
        ``body`` the raw body bytes exactly as received. ``now`` (unix time) is for tests.
        """
        self.require("v3")
        raw = _raw_body(body)
        current = time.time() if now is None else now
        signed = self._check_headers(_fold(headers), current)
        keys = self._config.platform_keys
        apiv3_key = self._config.apiv3_key
        assert keys is not None and apiv3_key is not None  # require() checked
        if signed.serial not in keys:
            known = ", ".join(sorted(keys)) or "none"
            raise NotificationError(
                "unknown_serial",
                f"signed by serial {signed.serial[:64]!r}, which certs does not hold; known: "
                f"{known}",
            )
        try:
            keys.verify(
                signed.serial,
                _v3.response_message(signed.timestamp, signed.nonce, raw),
                signed.signature,
                now=datetime.fromtimestamp(current, timezone.utc),
            )
        except VerificationError as exc:
            raise NotificationError("bad_signature", str(exc)) from None
        return self._decrypt_v3(raw, apiv3_key)

    async def aparse(
        self, headers: HeadersLike, body: bytes, *, now: float | None = None
    ) -> Notification:
        """``parse``, and on an unknown serial one certificate refresh first, when the client
        refreshes automatically (``client.certificates.auto_refresh``): a notification signed
        by a newly rotated certificate then verifies instead of being refused."""
        try:
            return self.parse(headers, body, now=now)
        except NotificationError as exc:
            resolve = self._config.resolve_serial
            serial = _fold(headers).get("Wechatpay-Serial")
            if exc.reason != "unknown_serial" or resolve is None or not serial:
                raise
            if not await resolve(serial):
                raise
        return self.parse(headers, body, now=now)

    def _check_headers(self, headers: _Folded, now: float) -> _v3.SignedHeaders:
        signature_type = headers.get("Wechatpay-Signature-Type")
        if signature_type and signature_type != _v3.AUTH_SCHEME:
            raise NotificationError(
                "unsupported",
                f"Wechatpay-Signature-Type {signature_type[:64]!r} is not supported; "
                f"expected {_v3.AUTH_SCHEME}",
            )
        timestamp = headers.get("Wechatpay-Timestamp")
        try:
            return _v3.signed_headers(headers, now=now, max_skew=self.max_skew)
        except VerificationError as exc:
            # signed_headers checks presence, then format, then skew: name which one failed.
            stale = (
                isinstance(timestamp, str)
                and timestamp.isdigit()
                and len(timestamp) <= 12
                and all(headers.get(n) for n in _SIGNED_HEADER_NAMES)
            )
            raise NotificationError("stale" if stale else "bad_signature", str(exc)) from None

    @staticmethod
    def _decrypt_v3(raw: bytes, apiv3_key: bytes) -> Notification:
        try:
            document = jsonsafe.loads(raw)
        except (ValueError, RecursionError, UnicodeDecodeError):
            raise NotificationError("malformed", "body is not JSON") from None
        if not isinstance(document, dict):
            raise NotificationError("malformed", "body is not a JSON object")
        text_fields = ("id", "create_time", "event_type", "resource_type")
        _require(document, text_fields, "notification", "malformed")
        resource = document.get("resource")
        if not isinstance(resource, dict):
            raise NotificationError("malformed", "notification lacks a resource object")
        algorithm = resource.get("algorithm")
        if algorithm != RESOURCE_ALGORITHM:
            shown = algorithm[:32] if isinstance(algorithm, str) else type(algorithm).__name__
            raise NotificationError(
                "unsupported",
                f"resource algorithm {shown!r} is not supported; expected {RESOURCE_ALGORITHM}",
            )
        _require(resource, ("ciphertext", "nonce"), "resource", "malformed")
        for name in ("ciphertext", "nonce", "associated_data", "original_type"):
            if not isinstance(resource.get(name, ""), str):
                raise NotificationError("malformed", f"resource {name} is not a string")
        for name in (*text_fields, "summary"):
            if not isinstance(document.get(name, ""), str):
                raise NotificationError("malformed", f"notification {name} is not a string")
        try:
            plaintext = crypto.aes_gcm_decrypt_bytes(
                resource["ciphertext"],
                apiv3_key,
                resource["nonce"],
                resource.get("associated_data") or "",
            )
        except DecryptionError as exc:
            raise NotificationError("bad_ciphertext", str(exc)) from None
        try:
            decrypted = jsonsafe.loads(plaintext)
        except (ValueError, RecursionError, UnicodeDecodeError):
            raise NotificationError("malformed", "decrypted resource is not JSON") from None
        if not isinstance(decrypted, dict):
            raise NotificationError("malformed", "decrypted resource is not a JSON object")
        return Notification(
            id=document["id"],
            create_time=document["create_time"],
            event_type=document["event_type"],
            resource_type=document["resource_type"],
            summary=document.get("summary") or "",
            resource=decrypted,
            original_type=resource.get("original_type") or "",
        )

    # --- APIv2 ------------------------------------------------------------------------------
    def parse_v2_pay(self, body: bytes) -> V2PayNotification:
        """Verify an APIv2 payment notification's ``sign`` (MD5 or HMAC-SHA256)."""
        self.require("v2_pay")
        secret = self._config.secret
        assert secret is not None
        fields = _v2_fields(_raw_body(body))
        sign_type = fields.get("sign_type")
        if sign_type is not None and sign_type not in _v2.SIGN_TYPES:
            raise NotificationError(
                "unsupported", f"sign_type {str(sign_type)[:32]!r} is not MD5 or HMAC-SHA256"
            )
        if not fields.get("sign"):
            raise NotificationError("bad_signature", "APIv2 notification has no sign")
        try:
            _v2.verify_answer(fields, secret, sign_type=sign_type, unsigned=False)
        except VerificationError as exc:
            message = str(exc).replace("answer", "notification")
            raise NotificationError("bad_signature", message) from None
        verified = _flat(fields, "notification")
        _require(verified, ("transaction_id", "out_trade_no"), "notification", "malformed")
        return V2PayNotification(verified)

    def parse_v2_refund(self, body: bytes) -> V2RefundNotification:
        """Decrypt an APIv2 refund notification's ``req_info`` with ``md5(secret)``.

        WeChat Pay signs nothing here: only what decrypts under the merchant's key counts.
        """
        self.require("v2_refund")
        envelope = _flat(_v2_fields(_raw_body(body)), "notification")
        if envelope.get("return_code") != "SUCCESS":
            raise NotificationError("malformed", "refund notification's return_code is not SUCCESS")
        req_info = envelope.pop("req_info", "")
        if not req_info:
            raise NotificationError("malformed", "refund notification lacks req_info")
        try:
            plaintext = crypto.aes_ecb_decrypt(req_info, self._md5_secret())
            info = Transformer.to_dict(plaintext)
        except (DecryptionError, InvalidArgumentError) as exc:
            # ECB carries no tag: a wrong key shows as bad padding or as garbage, not XML.
            raise NotificationError("bad_ciphertext", f"req_info: {exc}") from None
        decrypted = _flat(info, "req_info", "bad_ciphertext")
        _require(
            decrypted,
            ("refund_id", "out_refund_no", "refund_status"),
            "req_info",
            "bad_ciphertext",
        )
        return V2RefundNotification(decrypted, envelope)

    def _md5_secret(self) -> str:
        secret = self._config.secret
        assert secret is not None
        cached = self._refund_key
        if cached is None or cached[0] != secret:
            cached = self._refund_key = (secret, crypto.md5(secret))
        return cached[1]

    # --- one entry point for every kind ----------------------------------------------------
    def verify(
        self, kind: Kind, headers: HeadersLike, body: bytes, *, now: float | None = None
    ) -> AnyNotification:
        """``parse``, ``parse_v2_pay`` or ``parse_v2_refund``, chosen by ``kind``."""
        if kind == "v3":
            return self.parse(headers, body, now=now)
        if kind == "v2_pay":
            return self.parse_v2_pay(body)
        if kind == "v2_refund":
            return self.parse_v2_refund(body)
        raise InvalidArgumentError(f"kind must be one of {KINDS}, got {kind!r}")

    async def handle(
        self,
        headers: HeadersLike,
        body: bytes,
        handler: Callable[[Any], Awaitable[object]],
        *,
        kind: Kind = "v3",
        dedup: Deduplicator | Literal[False] | None = None,
        now: float | None = None,
    ) -> Answer:
        """Verify, de-duplicate, run ``handler(notification)``, and say what to answer.

        A notification that fails verification is answered 4xx (and logged with its reason);
        a duplicate of a handled one is acknowledged without running ``handler``. An exception
        from ``handler`` propagates (answer 5xx, as frameworks do): WeChat Pay re-sends it.
        ``dedup`` defaults to this object's in-memory store; ``False`` turns it off.
        """
        try:
            if kind == "v3":
                notification: AnyNotification = await self.aparse(headers, body, now=now)
            else:
                notification = self.verify(kind, headers, body, now=now)
        except NotificationError as exc:
            log_rejection(kind, exc)
            return Answer.reject(kind, exc.reason)
        store: Deduplicator | None
        if dedup is False:
            store = None
        else:
            store = self.dedup if dedup is None else dedup
        if store is not None:
            claim = await store.claim(notification.dedup_key)
            if claim == "done":
                logger.info("%s notification already handled: acknowledged again", kind)
                return Answer.ack(kind)
            if claim != "new":
                logger.info("%s notification is being handled: asked to re-send", kind)
                return Answer.reject(kind, "duplicate")
        try:
            await handler(notification)
        except BaseException:
            if store is not None:
                await finish_shielded(store, notification.dedup_key, handled=False)
            raise
        if store is not None:
            await finish_shielded(store, notification.dedup_key, handled=True)
        return Answer.ack(kind)


_SIGNED_HEADER_NAMES = (
    "Wechatpay-Timestamp",
    "Wechatpay-Nonce",
    "Wechatpay-Signature",
    "Wechatpay-Serial",
)


def _v2_fields(raw: bytes) -> dict[str, Any]:
    try:
        return Transformer.to_dict(raw)
    except InvalidArgumentError as exc:
        raise NotificationError("malformed", str(exc)) from None


def log_rejection(kind: str, exc: NotificationError) -> None:
    """Log a rejected notification: the reason and what failed, never its content."""
    logger.warning("%s notification rejected: %s", kind, exc)
