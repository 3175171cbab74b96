"""Exceptions raised by wechatpay-chain.

The tree::

    WechatpayError                      every error this package raises on purpose
    ├── InvalidArgumentError (ValueError)   bad configuration or bad call input; nothing was sent
    ├── VerificationError           an answer or notification failed verification: do not trust it
    │   └── NotificationError           a webhook could not be verified or decrypted (has `.reason`)
    ├── DecryptionError                 AES-GCM / RSA decryption failed (wrong key, tampered data)
    ├── ClientClosedError (RuntimeError)    the client was closed: the call was made afterwards,
    │                                   or was still in flight when it closed
    ├── DeadlineExceeded (httpx.TimeoutException)   a call's total deadline= passed
    └── APIError (httpx.HTTPStatusError)    WeChat Pay answered 4xx/5xx, or APIv2 said FAIL
        └── PublicKeyOnlyError          no platform certificates: the merchant uses a public key

Transport failures (connect errors, timeouts, a closed connection) surface as the usual
``httpx.TransportError`` subclasses. No message ever contains a private key, the APIv2 key,
the APIv3 key or a decrypted value.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = [
    "APIError",
    "ClientClosedError",
    "DeadlineExceeded",
    "DecryptionError",
    "InvalidArgumentError",
    "NotificationError",
    "PublicKeyOnlyError",
    "VerificationError",
    "WechatpayError",
]


class WechatpayError(Exception):
    """Base of every error raised on purpose by wechatpay-chain."""


class InvalidArgumentError(WechatpayError, ValueError):
    """Bad configuration or call input, detected before anything was sent."""


class VerificationError(WechatpayError):
    """An answer could not be verified; its content must not be trusted."""


class NotificationError(VerificationError):
    """A notification (webhook) failed verification or decryption.

    ``reason`` is one of: ``bad_signature``, ``stale``, ``unknown_serial``,
    ``bad_ciphertext``, ``malformed``, ``unsupported``, ``duplicate``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class ClientClosedError(WechatpayError, RuntimeError):
    """The client was closed (``close()``/``aclose()``) before or while this call ran.

    A RuntimeError, as httpx raises on a closed client; a call in flight when the client
    closed may or may not have reached WeChat Pay (query before re-sending).
    """


class DecryptionError(WechatpayError):
    """Decryption failed: wrong key, wrong associated data or tampered ciphertext."""


class DeadlineExceeded(WechatpayError, httpx.TimeoutException):
    """A call did not complete within its total ``deadline=`` (all attempts, all I/O)."""


class APIError(WechatpayError, httpx.HTTPStatusError):
    """WeChat Pay answered with an error.

    For APIv3 ``code``/``message`` come from the JSON error body; for APIv2 ``return_code``,
    ``return_msg``, ``err_code`` and ``err_code_des`` from the XML answer (``code`` and
    ``message`` then repeat the most specific of them).
    """

    def __init__(
        self,
        message: str,
        *,
        request: httpx.Request,
        response: httpx.Response,
        code: str | None = None,
        detail: Any = None,
        return_code: str | None = None,
        return_msg: str | None = None,
        err_code: str | None = None,
        err_code_des: str | None = None,
    ) -> None:
        super().__init__(message, request=request, response=response)
        self.status_code = response.status_code
        self.code = code
        self.message = message
        self.detail = detail
        self.request_id = response.headers.get("Request-ID")
        self.return_code = return_code
        self.return_msg = return_msg
        self.err_code = err_code
        self.err_code_des = err_code_des

    @property
    def status(self) -> int:
        """The HTTP status (same as ``status_code``)."""
        return self.status_code

    def __str__(self) -> str:
        parts = [f"HTTP {self.status_code}"]
        if self.code:
            parts.append(str(self.code))
        parts.append(self.message)
        if self.request_id:
            parts.append(f"(Request-ID {self.request_id})")
        return " ".join(parts)


class PublicKeyOnlyError(APIError):
    """The merchant has no platform certificate: WeChat Pay signs with its platform public key.

    WeChat Pay answers ``RESOURCE_NOT_EXISTS``; give the public key in ``certs`` instead.
    """

    @classmethod
    def from_error(cls, error: APIError) -> PublicKeyOnlyError:
        return cls(
            "this merchant has no platform certificates (public-key mode): WeChat Pay signs "
            "with the platform public key; download pub_key.pem from the merchant platform "
            "and give it as certs={'PUB_KEY_ID_…': 'file:///path/pub_key.pem'}",
            request=error.request,
            response=error.response,
            code=error.code,
            detail=error.detail,
        )
