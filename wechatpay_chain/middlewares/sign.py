"""The ``signer`` stage: the APIv3 ``Authorization`` header, the APIv2 ``sign`` field."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import httpx

from .. import crypto
from .._exceptions import InvalidArgumentError
from ..protocol import v2 as _v2
from ..protocol import v3 as _v3
from ..protocol.formatter import Formatter
from ..protocol.request import Request
from ..protocol.transformer import Transformer
from ..transport.parallel import loop_load
from .pipeline import Handler
from .template import locate
from .upload import V2_UPLOAD_SIGN_TYPE, V2Upload

if TYPE_CHECKING:
    from .._config import Config

__all__ = ["RsaSigner", "SignRequest"]


RsaSigner = Callable[[bytes], Awaitable[str] | str]


class SignRequest:
    """``signer``: APIv3 ``Authorization`` header over the exact target and body.

    ``rsa_sign`` replaces the local private key, e.g. with a KMS/HSM call that returns the
    base64 signature of the message it is given (sync or async).
    """

    def __init__(self, config: Config, rsa_sign: RsaSigner | None = None) -> None:
        self._config = config
        self._rsa_sign = rsa_sign

    async def __call__(self, request: Request, call_next: Handler) -> httpx.Response:
        if request.api != "v3":
            self.sign_v2(request)
            return await call_next(request)
        config = self._config
        mchid, serial = config.require_v3(self._rsa_sign is None)
        timestamp = str(int(time.time()))
        nonce = Formatter.nonce(32)
        body = request.state.get("signed_body")
        if body is None:
            content = request.content
            body = content if isinstance(content, bytes) else b""
        message = _v3.request_message(request.method, request.target, timestamp, nonce, body)
        if self._rsa_sign is not None:
            result = self._rsa_sign(message)
            signature = result if isinstance(result, str) else await result
        else:
            key = config.private_key
            assert key is not None
            load = loop_load() if config.parallel_signing else None
            if load is not None:
                # Counted in flight until its answer: the load decides who signs the next.
                load.inflight += 1
                try:
                    signed = load.sign(key, message)
                    signature = signed if isinstance(signed, str) else await signed
                    request.headers["Authorization"] = _v3.authorization(
                        mchid, serial, timestamp, nonce, signature
                    )
                    return await call_next(request)
                finally:
                    load.inflight -= 1
            signature = crypto.sign_sha256_rsa(message, key)
        request.headers["Authorization"] = _v3.authorization(
            mchid, serial, timestamp, nonce, signature
        )
        return await call_next(request)

    def sign_v2(self, request: Request) -> None:
        """Sign the ``xml=`` fields: the XML body, or the query of a GET."""
        config = self._config
        if not config.secret:
            raise InvalidArgumentError(
                f"secret (the APIv2 key) is required for {request.template!r}"
            )
        if request.body is not None and isinstance(request.content, V2Upload):
            self._seal_v2_upload(request, request.content, config.secret)
            return
        fields = _v2.build_request_fields(
            request.xml or {},
            mchid=config.mchid,
            secret=config.secret,
            nonceless=request.nonceless,
            nonce=Formatter.nonce(32),
        )
        request.state["sign_type"] = fields.get("sign_type", "MD5")
        if request.method == "GET":
            request.query = {**(request.query or {}), **fields}
            locate(request)
        else:
            request.content = Transformer.to_xml(fields).encode("utf-8")

    def _seal_v2_upload(self, request: Request, upload: V2Upload, secret: str) -> None:
        """The form of an APIv2 upload: mch_id, media_hash, sign_type, signed (no nonce)."""
        mchid = self._config.mchid
        if not mchid:
            raise InvalidArgumentError(
                f"mchid is required for the APIv2 upload {request.template!r}"
            )
        fields = _v2.build_request_fields(
            {"mch_id": mchid, "media_hash": upload.media_hash, "sign_type": V2_UPLOAD_SIGN_TYPE},
            mchid=mchid,
            secret=secret,
            nonceless=True,
            nonce="",
        )
        request.state["sign_type"] = V2_UPLOAD_SIGN_TYPE
        upload.seal(request, fields)
