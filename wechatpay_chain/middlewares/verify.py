"""The ``verifier`` stage: an answer is handed back only once its signature checks out."""

from __future__ import annotations

import base64
import hashlib
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils

from .._exceptions import InvalidArgumentError, VerificationError
from ..protocol import v2 as _v2
from ..protocol import v3 as _v3
from ..protocol.request import Request
from ..protocol.v3 import is_unsigned_v3
from ..transport.models import signed_values
from .errors import answer_fields
from .pipeline import Handler

if TYPE_CHECKING:
    from .._config import Config

__all__ = ["SignedBody", "VerifyAnswer"]

_SHA256 = hashes.SHA256()
_PREHASHED = utils.Prehashed(_SHA256)
_PKCS1V15 = padding.PKCS1v15()


class VerifyAnswer:
    """``verifier``: the answer's signature, timestamp and serial must check out."""

    def __init__(self, config: Config) -> None:
        self._config = config

    async def __call__(self, request: Request, call_next: Handler) -> httpx.Response:
        if request.path in _v3.STATEMENT_PATHS and request.method == "GET":
            # Uncompressed unless the caller asks otherwise: then the SHA-1 WeChat Pay signs
            # is compared with exactly the bytes received (see _plain).
            if not any(name.lower() == "accept-encoding" for name in request.headers):
                request.headers["Accept-Encoding"] = "identity"
        if request.sink is not None and request.api == "v3":
            if not is_unsigned_v3(request.path, request.method):
                # Streamed to the sink: checked on the way, nothing kept unless it verifies.
                checks = request.state.setdefault("sink_checks", {})
                checks["signature"] = (
                    SignedStatement(self._config, request)
                    if _is_statement(request)
                    else SignedBody(self._config, request)
                )
        response = await call_next(request)
        if request.api == "v3":
            try:
                self.check_v3(request, response)
            except VerificationError:
                if not await self._resolved(response):
                    raise
                self.check_v3(request, response)  # once more, now that the serial is known
        else:
            self.check_v2(request, response)
        return response

    async def _resolved(self, response: httpx.Response) -> bool:
        """True when an unknown signing serial just became trusted (certificate refresh)."""
        resolve = self._config.resolve_serial
        serial = response.headers.get("Wechatpay-Serial")
        if resolve is None or not serial:
            return False
        keys = self._config.platform_keys
        if keys is not None and serial in keys:
            return False  # known: the failure was something else
        return await resolve(serial)

    def check_v2(self, request: Request, response: httpx.Response) -> None:
        """The ``sign`` of a SUCCESS answer; failures and files are left to the transformer."""
        if response.status_code >= 400 or _v2.is_json_answer(request.path):
            return  # JSON answers carry no sign: the transformer reads their retcode
        try:
            fields = answer_fields(request, response)
        except InvalidArgumentError as exc:
            raise VerificationError(f"{request.method} {request.template}: {exc}") from None
        if fields is None:
            if _v2.is_unsigned_answer(request.path):
                return  # a file (bill) or JSON (getaccesstoken) rather than XML
            raise VerificationError(f"{request.method} {request.template}: answer is not XML")
        for key, value in fields.items():
            if not isinstance(value, str):
                # Even a FAIL answer: which of two return_codes would be the true one?
                raise VerificationError(
                    f"{request.method} {request.template}: answer field {key[:40]!r} is "
                    "repeated or nested; it must not be trusted"
                )
        if _v2.answer_failure(fields) is not None and "sign" not in fields:
            return  # FAIL answers usually carry no sign; the transformer raises APIError
        secret = self._config.secret
        assert secret is not None  # the signer required it
        try:
            _v2.verify_answer(
                fields,
                secret,
                sign_type=request.state.get("sign_type"),
                unsigned=_v2.is_unsigned_answer(request.path),
            )
        except VerificationError as exc:
            raise VerificationError(f"{request.method} {request.template}: {exc}") from None

    def check_v3(self, request: Request, response: httpx.Response) -> None:
        if is_unsigned_v3(request.path, request.method):
            return
        if "sink" in response.extensions:
            check = request.state.get("sink_checks", {}).get("signature")
            if check is None or not check.verified:
                raise VerificationError(
                    f"{request.method} {request.template}: the answer streamed to the sink "
                    "was not verified on its way"
                )
            return
        headers = response.headers
        if response.status_code >= 400 and "Wechatpay-Signature" not in headers:
            return  # an unsigned error: the transformer raises APIError, nothing is trusted
        keys = self._config.platform_keys
        if keys is None:
            raise InvalidArgumentError(
                "certs is required to verify APIv3 answers: give the platform certificate or "
                "public key (PUB_KEY_ID_…) it signs with"
            )
        now = time.time()
        try:
            signed = _v3.parse_signed(signed_values(headers), now=now)
            digest = None
            if request.path in _v3.STATEMENT_PATHS and request.method == "GET":
                digest = _v3.statement_digest(headers.get(_v3.STATEMENT_DIGEST))
            signed_body = response.content if digest is None else _v3.statement_message(digest)
            message = _v3.response_message(signed.timestamp, signed.nonce, signed_body)
            keys.verify(
                signed.serial,
                message,
                signed.signature,
                now=now,
            )
            if digest is not None and _plain(response):
                _check_statement(digest, hashlib.sha1(response.content, usedforsecurity=False))
        except VerificationError as exc:
            request_id = headers.get("Request-ID")
            where = f" (Request-ID {request_id})" if request_id else ""
            raise VerificationError(f"{request.method} {request.template}: {exc}{where}") from None


class SignedBody:
    """The verifier's check of a streamed APIv3 answer: SHA-256 over the body as it arrives,
    then the platform key's signature over that digest (the same message as in memory)."""

    __slots__ = ("_config", "_digest", "_entry", "_headers", "_request_id", "_where", "verified")

    def __init__(self, config: Config, request: Request) -> None:
        self._config = config
        self._where = f"{request.method} {request.template}"
        self._digest: Any = None
        self._entry: Any = None
        self._headers: _v3.SignedHeaders | None = None
        self._request_id: str | None = None
        self.verified = False

    def _fail(self, message: str) -> VerificationError:
        request_id = self._request_id
        where = f" (Request-ID {request_id})" if request_id else ""
        return VerificationError(f"{self._where}: {message}{where}")

    async def begin(self, response: httpx.Response) -> None:
        keys = self._config.platform_keys
        if keys is None:
            raise InvalidArgumentError(
                "certs is required to verify APIv3 answers: give the platform certificate or "
                "public key (PUB_KEY_ID_…) it signs with"
            )
        self.verified = False
        self._request_id = response.headers.get("Request-ID")
        now = time.time()
        try:
            signed = _v3.parse_signed(signed_values(response.headers), now=now)
        except VerificationError as exc:
            raise self._fail(str(exc)) from None
        resolve = getattr(self._config, "resolve_serial", None)
        if signed.serial not in keys and resolve is not None:
            await resolve(signed.serial)
        entry = keys.get(signed.serial)
        if entry is None:
            known = ", ".join(sorted(keys)) or "none"
            raise self._fail(
                f"signed by serial {signed.serial[:64]!r}, which certs does not hold; "
                f"known: {known}",
            )
        if entry.not_after is not None or entry.not_before is not None:
            # The validity window, as the in-memory check (PlatformKeys.verify) applies it.
            when = datetime.fromtimestamp(now, timezone.utc)
            if entry.not_after is not None and when > entry.not_after:
                raise self._fail(
                    f"platform certificate {signed.serial} expired at {entry.not_after}"
                )
            if entry.not_before is not None and when < entry.not_before:
                raise self._fail(
                    f"platform certificate {signed.serial} is not valid before {entry.not_before}"
                )
        self._headers = signed
        self._entry = entry
        # The signed message is TIMESTAMP\nNONCE\nBODY\n: its head now, the body as it comes.
        self._digest = hashlib.sha256(
            _v3.response_message(signed.timestamp, signed.nonce, b"")[:-1]
        )

    def update(self, chunk: bytes) -> None:
        self._digest.update(chunk)

    def end(self) -> None:
        assert self._headers is not None
        self._digest.update(b"\n")
        try:
            signature = base64.b64decode(self._headers.signature, validate=True)
            self._entry.key.verify(signature, self._digest.digest(), _PKCS1V15, _PREHASHED)
        except (InvalidSignature, ValueError):
            raise self._fail(f"signature by {self._headers.serial} does not verify") from None
        self.verified = True


def _is_statement(request: Request) -> bool:
    return request.method == "GET" and request.path in _v3.STATEMENT_PATHS


def _plain(response: httpx.Response) -> bool:
    """Whether the body is as WeChat Pay sent it (no Content-Encoding undone by the client).

    The documentation does not say whether a compressed statement's SHA-1 covers the
    compressed or the plain bytes, so only an uncompressed answer has its digest compared.
    """
    encoding: str = response.headers.get("Content-Encoding", "identity")
    return encoding.strip().lower() == "identity"


def _check_statement(digest: str, actual: Any) -> None:
    if actual.hexdigest() != digest.lower():
        raise VerificationError(
            f"the statement's SHA-1 is {actual.hexdigest()}, not the signed "
            f"{_v3.STATEMENT_DIGEST} {digest}: the file is corrupt or was changed"
        )


class SignedStatement:
    """The verifier's check of a streamed statement: the signature over the digest JSON
    first, then the received file's SHA-1 against that digest.

    An answer without ``Wechatpay-Statement-Sha1`` is checked as any other body is."""

    __slots__ = ("_body", "_config", "_digest", "_hash", "_request", "_where")

    def __init__(self, config: Config, request: Request) -> None:
        self._config = config
        self._request = request
        self._where = f"{request.method} {request.template}"
        self._body: SignedBody | None = None
        self._digest: str | None = None
        self._hash: Any = None

    @property
    def verified(self) -> bool:
        if self._body is not None:
            return bool(self._body.verified)
        return self._digest is not None and self._hash is None

    async def begin(self, response: httpx.Response) -> None:
        self._digest = None
        headers = response.headers
        if _v3.STATEMENT_DIGEST not in headers:
            self._body = SignedBody(self._config, self._request)
            await self._body.begin(response)
            return
        self._body = None
        keys = self._config.platform_keys
        if keys is None:
            raise InvalidArgumentError(
                "certs is required to verify APIv3 answers: give the platform certificate or "
                "public key (PUB_KEY_ID_…) it signs with"
            )
        now = time.time()
        try:
            signed = _v3.parse_signed(signed_values(headers), now=now)
            digest = _v3.statement_digest(headers.get(_v3.STATEMENT_DIGEST))
            assert digest is not None
            resolve = self._config.resolve_serial
            if signed.serial not in keys and resolve is not None:
                await resolve(signed.serial)
            message = _v3.response_message(
                signed.timestamp, signed.nonce, _v3.statement_message(digest)
            )
            keys.verify(signed.serial, message, signed.signature, now=now)
        except VerificationError as exc:
            request_id = headers.get("Request-ID")
            where = f" (Request-ID {request_id})" if request_id else ""
            raise VerificationError(f"{self._where}: {exc}{where}") from None
        self._hash = hashlib.sha1(usedforsecurity=False) if _plain(response) else None
        self._digest = digest

    def update(self, chunk: bytes) -> None:
        if self._body is not None:
            self._body.update(chunk)
        elif self._hash is not None:
            self._hash.update(chunk)

    def end(self) -> None:
        if self._body is not None:
            self._body.end()
            return
        assert self._digest is not None
        if self._hash is not None:
            try:
                _check_statement(self._digest, self._hash)
            except VerificationError as exc:
                raise VerificationError(f"{self._where}: {exc}") from None
            self._hash = None
