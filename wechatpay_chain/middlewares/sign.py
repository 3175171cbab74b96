"""The ``signer`` stage: the APIv3 ``Authorization`` header, the APIv2 ``sign`` field."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from .. import crypto
from .._exceptions import InvalidArgumentError
from ..protocol import v2 as _v2
from ..protocol import v3 as _v3
from ..protocol.formatter import Formatter
from ..protocol.headers import put
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


def _authorize(request: Request, value: str) -> None:
    if "user_headers" in request.state:  # the caller's spelling of the name, if any
        put(request.headers, "Authorization", value)
    else:
        request.headers["Authorization"] = value


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
            if isinstance(content, bytes):
                body = content
            elif content is None:
                body = b""
            else:  # a stream: what it will send cannot be signed before it is sent
                raise InvalidArgumentError(
                    f"body= of the APIv3 request {request.template!r} is a stream "
                    f"({type(content).__name__}), and the signature covers the body: pass "
                    f"bytes or str (read the stream first), or an UploadForm for uploads"
                )
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
                    value = _v3.authorization(mchid, serial, timestamp, nonce, signature)
                    _authorize(request, value)
                    return await call_next(request)
                finally:
                    load.inflight -= 1
            signature = crypto.sign_sha256_rsa(message, key)
        _authorize(request, _v3.authorization(mchid, serial, timestamp, nonce, signature))
        return await call_next(request)

    def sign_v2(self, request: Request) -> None:
        """Sign the ``xml=`` fields into the XML body; on a GET, the query and ``xml=`` fields
        into the query."""
        config = self._config
        if not config.secret:
            raise InvalidArgumentError(
                f"secret (the APIv2 key) is required for {request.template!r}"
            )
        if request.body is not None and isinstance(request.content, V2Upload):
            self._seal_v2_upload(request, request.content, config.secret)
            return
        data: Mapping[str, Any] = request.xml or {}
        if request.method == "GET" and request.query:
            # A GET carries its fields in the query: those are what WeChat Pay checks the
            # sign over (the PHP SDK signs the query the same way); xml= fields join them.
            data = {**request.query, **data}
        fields = _v2.build_request_fields(
            data,
            mchid=config.mchid,
            secret=config.secret,
            nonceless=request.nonceless,
            nonce=Formatter.nonce(32),
        )
        request.state["sign_type"] = fields.get("sign_type", "MD5")
        if request.method == "GET":
            request.query = fields
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
