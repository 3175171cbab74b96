"""The TLS context presenting the merchant API certificate (APIv2 ``security=True``)."""

from __future__ import annotations

import ssl
import tempfile
from typing import Any

import httpx

from .._exceptions import InvalidArgumentError
from ..crypto.identity import NO_CERT, MerchantIdentity

__all__ = ["merchant_ssl_context"]


def _copy_context(base: ssl.SSLContext) -> ssl.SSLContext:
    """A new client context trusting what ``base`` trusts.

    An SSLContext cannot be cloned, and loading the merchant certificate into the user's
    own ``verify=`` context would make plain requests present it too.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = base.check_hostname
    context.verify_mode = base.verify_mode
    context.verify_flags = base.verify_flags
    context.minimum_version = base.minimum_version
    context.maximum_version = base.maximum_version
    context.options = base.options
    if base.keylog_filename:
        context.keylog_filename = base.keylog_filename
    cas = base.get_ca_certs(binary_form=True)
    if cas:
        context.load_verify_locations(cadata=b"".join(cas))
    elif context.verify_mode != ssl.CERT_NONE:
        # A store read lazily from a directory lists nothing until used: trust the defaults.
        context.load_default_certs()
    return context


def _base_context(verify: Any, trust_env: bool) -> ssl.SSLContext:
    if isinstance(verify, ssl.SSLContext):
        return _copy_context(verify)
    return httpx.create_ssl_context(verify=verify, trust_env=trust_env)


def merchant_ssl_context(
    identity: MerchantIdentity | None, verify: Any = True, trust_env: bool = True
) -> ssl.SSLContext:
    """A client context that trusts as ``verify=`` does and presents the merchant certificate.

    Raises ``InvalidArgumentError`` when the client has no merchant certificate.
    """
    if identity is None:
        raise InvalidArgumentError(NO_CERT)
    context = _base_context(verify, trust_env)
    context.post_handshake_auth = True
    with tempfile.TemporaryDirectory(prefix="wechatpay-chain-") as folder:
        path, password = identity.pem_files(folder)
        try:
            context.load_cert_chain(path, password=password)
        except (ssl.SSLError, ValueError) as exc:
            raise InvalidArgumentError(
                f"merchant_cert/merchant_key cannot be used for TLS: {exc.__class__.__name__}"
            ) from None
    return context
