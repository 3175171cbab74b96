"""The SSL context for APIv2 ``security=True`` requests (the merchant certificate)."""

from __future__ import annotations

import os
import ssl
import tempfile
from typing import TYPE_CHECKING, Any

from ._exceptions import InvalidArgumentError

if TYPE_CHECKING:
    from ._client import Config

__all__ = ["merchant_ssl_context"]


def _pem(value: object, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str):
        if "-----BEGIN" in value:
            return value.encode("ascii")
        path = value[len("file://") :] if value.startswith("file://") else value
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise InvalidArgumentError(f"{what}: {path!r} cannot be read: {exc.strerror}") from None
    raise InvalidArgumentError(
        f"{what} must be PEM bytes/str or a path, got {type(value).__name__}"
    )


def merchant_ssl_context(config: Config, verify: Any = True) -> ssl.SSLContext:
    """A client context presenting the merchant certificate; fails clearly when none is set."""
    if config.merchant_cert is None or config.merchant_key is None:
        raise InvalidArgumentError(
            "security=True requests need merchant_cert and merchant_key (the apiclient_cert.pem "
            "and apiclient_key.pem of the merchant)"
        )
    if isinstance(verify, ssl.SSLContext):
        context = verify
    elif verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, str):
        context = ssl.create_default_context(cafile=verify)
    else:
        import certifi

        context = ssl.create_default_context(cafile=certifi.where())
    cert = _pem(config.merchant_cert, "merchant_cert")
    key = _pem(config.merchant_key, "merchant_key")
    # ssl loads a certificate chain from files only; the files live just long enough to load.
    with tempfile.TemporaryDirectory(prefix="wechatpay-chain-") as folder:
        cert_path = os.path.join(folder, "cert.pem")
        key_path = os.path.join(folder, "key.pem")
        for path, data in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        try:
            context.load_cert_chain(cert_path, key_path, password=config.merchant_key_password)
        except (ssl.SSLError, ValueError) as exc:
            raise InvalidArgumentError(
                f"merchant_cert/merchant_key cannot be used for TLS: {exc.__class__.__name__}"
            ) from None
    return context
