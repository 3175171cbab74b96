"""The default middlewares: template expansion, transformer, signer and verifier.

Each handles both API versions; the protocol logic itself lives in ``_v3`` and ``_v2``.
"""

from __future__ import annotations

import json
import time
from asyncio import _get_running_loop
from collections.abc import Awaitable, Callable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from . import _v2, _v3, crypto
from ._exceptions import APIError, InvalidArgumentError, VerificationError
from ._formatter import Formatter
from ._media import V2_UPLOAD_SIGN_TYPE, UploadForm, V2Upload
from ._parallel import PARALLEL_FROM, signing_threads
from ._pipeline import Handler, Request
from ._sensitive import serial_header
from ._sink import SignedBody
from ._transformer import Transformer

if TYPE_CHECKING:
    from ._config import Config

__all__ = [
    "UNSIGNED_V3_PATHS",
    "DecodeAnswer",
    "ExpandTemplate",
    "SignRequest",
    "VerifyAnswer",
    "locate",
]

#: APIv3 paths whose answers WeChat Pay does not sign (file downloads, GET only; see
#: ``is_unsigned_v3``). An entry ending in `/` covers one segment below it (`{media_id}`).
UNSIGNED_V3_PATHS: tuple[str, ...] = (
    "v3/billdownload/file",
    "v3/transferdownload/signfile",
    "v3/transferdownload/elecvoucherfile",
    "v3/merchant-service/images/",
    "v3/new-tax-control-fapiao/download-invoice-file",
    # Cross-border: the statement file (its answer has Wechatpay-Statement-Sha1, no
    # signature) and complaint images.
    "v3/global/statements",
    "v3/global/merchant-service/images/",
)

_JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


@lru_cache(maxsize=4096)
def _parts(template: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Literal pieces and placeholder names of ``template``, alternating: lit, name, lit..."""
    literals: list[str] = []
    names: list[str] = []
    rest = template
    while True:
        start = rest.find("{")
        if start < 0:
            if "}" in rest:
                raise InvalidArgumentError(f"template {template!r} has an unmatched '}}'")
            literals.append(rest)
            break
        end = rest.find("}", start)
        if end < 0:
            raise InvalidArgumentError(f"template {template!r} has an unmatched '{{'")
        name = rest[start + 1 : end]
        if not name or "{" in name:
            raise InvalidArgumentError(f"template {template!r} has an empty or nested placeholder")
        literals.append(rest[:start])
        names.append(name)
        rest = rest[end + 1 :]
    return tuple(literals), tuple(names)


def placeholders(template: str) -> tuple[str, ...]:
    """The placeholder names of ``template`` in order."""
    return _parts(template)[1]


def expand(template: str, params: Mapping[str, str]) -> str:
    """``template`` with each placeholder replaced by its percent-encoded value (RFC 6570 {var})."""
    literals, names = _parts(template)
    if not names:
        return template
    out = [literals[0]]
    for name, literal in zip(names, literals[1:], strict=True):
        out.append(quote(params[name], safe=""))
        out.append(literal)
    return "".join(out)


def encode_query(query: Mapping[str, Any]) -> str:
    """``k=v&…`` in the given order; values percent-encoded except RFC 3986 unreserved."""
    pairs = []
    for key, value in query.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif not isinstance(value, str | int):
            raise InvalidArgumentError(
                f"query[{key!r}] must be str or int, got {type(value).__name__}"
            )
        pairs.append(f"{quote(str(key), safe='')}={quote(str(value), safe='')}")
    return "&".join(pairs)


def locate(request: Request) -> None:
    """Set ``url`` and ``target`` from ``base_url``, ``path`` and ``query``."""
    base = request.base_url
    qs = encode_query(request.query) if request.query else ""
    suffix = request.path + ("?" + qs if qs else "")
    request.url = base + suffix
    request.target = _base_path(base) + suffix


@lru_cache(maxsize=64)
def _base_path(base_url: str) -> str:
    return httpx.URL(base_url).raw_path.decode("ascii").split("?", 1)[0]


class ExpandTemplate:
    """``template``: placeholders expanded and percent-encoded, URL and target fixed."""

    async def __call__(self, request: Request, call_next: Handler) -> httpx.Response:
        template = request.template
        if request.api == "v2":
            template = template[3:]
        request.path = expand(template, request.params)
        locate(request)
        return await call_next(request)


def _text_body(body: Any) -> Any:
    if isinstance(body, str):
        return body.encode("utf-8")
    return body


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, non-ASCII kept as is: the exact bytes that are signed and sent."""
    try:
        return _ENCODER.encode(value).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"json body cannot be serialised: {exc}") from None


class DecodeAnswer:
    """``transformer``: encodes the JSON body, turns 4xx/5xx answers into APIError.

    A JSON body holding values from ``client.encrypt`` gets the ``Wechatpay-Serial`` header
    of the key they were encrypted with.
    """

    def __init__(self, config: Config | None = None) -> None:
        self._config = config

    async def __call__(self, request: Request, call_next: Handler) -> httpx.Response:
        if request.api == "v3":
            if request.has_json:
                request.content = dumps(request.json)
                request.headers = {**_JSON_HEADERS, **request.headers}
                if self._config is not None and self._config.encrypted:
                    self._mark_serial(request)
            elif isinstance(request.body, UploadForm):
                await request.body.prepare(request)  # multipart; signed over its meta JSON
            else:
                request.content = _text_body(request.body)
                request.headers.setdefault("Accept", "application/json")
            response = await call_next(request)
            if response.status_code >= 400:
                raise _v3_error(response)
            return response
        if isinstance(request.body, UploadForm):
            await request.body.prepare(request)  # multipart; the signer seals its fields
        if request.method != "GET":
            request.headers.setdefault("Content-Type", "text/xml; charset=utf-8")
        response = await call_next(request)
        _raise_v2_failure(request, response)
        return response

    @staticmethod
    def _mark_serial(request: Request) -> None:
        given = next(
            (v for k, v in request.headers.items() if k.lower() == "wechatpay-serial"), None
        )
        serial = serial_header(request.json, given)
        if serial is not None and given is None:
            request.headers["Wechatpay-Serial"] = serial


def answer_fields(request: Request, response: httpx.Response) -> dict[str, Any] | None:
    """The APIv2 answer as a dict (parsed once per request), or None for a non-XML body."""
    cached = request.state.get("answer")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    # A body streamed into the sink is a file; an XML answer to a sink= request (an APIv2
    # download's error) was kept in memory by the sink and is parsed like any other.
    if "sink" in response.extensions or not response.content.lstrip()[:1] == b"<":
        return None
    fields = Transformer.to_dict(response.content)
    request.state["answer"] = fields
    return fields


def _raise_v2_failure(request: Request, response: httpx.Response) -> None:
    try:
        fields = answer_fields(request, response)
    except InvalidArgumentError:
        fields = None
    if fields is None:
        if response.status_code >= 400:
            raise APIError(
                response.reason_phrase or "error", request=response.request, response=response
            )
        if _v2.is_unsigned_answer(request.path):
            return  # a file (bill) rather than XML
        raise VerificationError(f"{request.method} {request.template}: answer is not XML")
    failure = _v2.answer_failure(fields) if response.status_code < 400 else None
    if response.status_code >= 400 and failure is None:
        failure = _v2.answer_failure(fields) or {"return_code": "FAIL"}
    if failure is None:
        return
    code = failure.get("err_code") or failure.get("return_code")
    message = failure.get("err_code_des") or failure.get("return_msg") or "FAIL"
    raise APIError(
        message,
        request=response.request,
        response=response,
        code=code,
        return_code=failure.get("return_code"),
        return_msg=failure.get("return_msg"),
        err_code=failure.get("err_code"),
        err_code_des=failure.get("err_code_des"),
    )


def _v3_error(response: httpx.Response) -> APIError:
    code: str | None = None
    message = response.reason_phrase or "error"
    detail: Any = None
    try:
        data = json.loads(response.content) if response.content else None
    except (ValueError, httpx.ResponseNotRead):
        data = None
    if isinstance(data, dict):
        code = str(data["code"]) if data.get("code") is not None else None
        message = str(data.get("message") or message)
        detail = data.get("detail")
    return APIError(message, request=response.request, response=response, code=code, detail=detail)


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
        if request.api == "v3":
            config = self._config
            mchid, serial = config.require_v3(self._rsa_sign is None)
            timestamp = str(int(time.time()))
            nonce = Formatter.nonce(32)
            content = request.content
            body = request.state.get("signed_body")
            if body is None:
                body = content if isinstance(content, bytes) else b""
            message = _v3.request_message(request.method, request.target, timestamp, nonce, body)
            if self._rsa_sign is None:
                key = config.private_key
                assert key is not None
                threads = signing_threads() if config.parallel_signing else None
                loop = _get_running_loop() if threads is not None else None
                if loop is not None:
                    assert threads is not None
                    load = threads.load(loop)
                    load.inflight += 1
                    try:
                        # With few requests on its loop, one is signed inline: a thread
                        # would only add latency. With more in flight, a spare core signs
                        # it, unless the workers are behind: then this core takes its share.
                        if load.inflight >= PARALLEL_FROM and not threads.behind():
                            signature = await threads.sign(load, key, message)
                        else:
                            signature = crypto.sign_sha256_rsa(message, key)
                        request.headers["Authorization"] = _v3.authorization(
                            mchid, serial, timestamp, nonce, signature
                        )
                        return await call_next(request)
                    finally:
                        load.inflight -= 1
                signature = crypto.sign_sha256_rsa(message, key)
            else:
                result = self._rsa_sign(message)
                signature = result if isinstance(result, str) else await result
            request.headers["Authorization"] = _v3.authorization(
                mchid, serial, timestamp, nonce, signature
            )
        else:
            self.sign_v2(request)
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


class VerifyAnswer:
    """``verifier``: the answer's signature, timestamp and serial must check out."""

    def __init__(self, config: Config) -> None:
        self._config = config

    async def __call__(self, request: Request, call_next: Handler) -> httpx.Response:
        if request.sink is not None and request.api == "v3":
            if not is_unsigned_v3(request.path, request.method):
                # Streamed to the sink: checked on the way, nothing kept unless it verifies.
                checks = request.state.setdefault("sink_checks", {})
                checks["signature"] = SignedBody(self._config, request)
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
        if response.status_code >= 400:
            return
        try:
            fields = answer_fields(request, response)
        except InvalidArgumentError as exc:
            raise VerificationError(f"{request.method} {request.template}: {exc}") from None
        if fields is None:
            if _v2.is_unsigned_answer(request.path):
                return  # a file (bill) rather than XML
            raise VerificationError(f"{request.method} {request.template}: answer is not XML")
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
            signed = _v3.signed_headers(headers, now=now)
            message = _v3.response_message(signed.timestamp, signed.nonce, response.content)
            keys.verify(
                signed.serial,
                message,
                signed.signature,
                now=now,
            )
        except VerificationError as exc:
            request_id = headers.get("Request-ID")
            where = f" (Request-ID {request_id})" if request_id else ""
            raise VerificationError(f"{request.method} {request.template}: {exc}{where}") from None
