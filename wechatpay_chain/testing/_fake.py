"""The fake WeChat Pay server: checks signed requests, signs its answers, can misbehave."""

from __future__ import annotations

import inspect
import itertools
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from .. import crypto
from .._exceptions import VerificationError
from ..protocol import v3 as _v3
from ._core import (
    FAULTS,
    PUBLIC_KEY_ID,
    FakeRequest,
    Handler,
    Merchant,
    PlatformSigner,
    Reply,
    _compile,
    _Fault,
    _hex_serial,
    _Route,
    generate_key,
    private_pem,
    self_signed,
)
from ._http import HTTPReply, HTTPRequest, ServerThread
from ._pki import TestCA

if TYPE_CHECKING:
    import httpx

    from .._client import Client
    from ._certificates import PlatformCertificates
    from ._files import FakeFiles

__all__ = ["FAULTS", "FakeRequest", "FakeWechatPay", "Merchant", "Reply"]

class FakeWechatPay:
    """A fake WeChat Pay on loopback for tests, demos and benchmarks.

    ``mode`` chooses how answers are signed: ``"public_key"`` (``PUB_KEY_ID_…``) or
    ``"certificate"`` (a platform certificate serial). The client from ``client()`` trusts
    both, so a test can switch modes at will.
    """

    def __init__(
        self, *, merchant: Merchant | None = None, mode: str = "public_key", tls: bool = False
    ) -> None:
        self.merchant = merchant or Merchant.generate()
        self.merchants: dict[str, Merchant] = {self.merchant.mchid: self.merchant}
        key = generate_key()
        self.public_key_signer = PlatformSigner(PUBLIC_KEY_ID, key)
        cert_key = generate_key()
        certificate = self_signed(cert_key, int(_hex_serial(19), 16), "Tenpay.com Root CA")
        self.certificate_signer = PlatformSigner(
            crypto.certificate_serial(certificate), cert_key, certificate
        )
        self.mode = mode
        self.requests: list[FakeRequest] = []
        self._routes: list[_Route] = []
        self._faults: deque[_Fault] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.state: dict[str, Any] = {}
        #: ``catch_all()``: unrouted requests get an echo instead of a 404 (``_catchall.py``).
        self._catch_all = False
        #: With ``tls=True``: the test CA behind the HTTPS listener and the merchant certificates.
        self.ca: TestCA | None = TestCA() if tls else None
        self._server = ServerThread(
            self._handle, ssl_context=self.ca.server_context() if self.ca is not None else None
        )
        from . import _seeds

        _seeds.install(self)

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> FakeWechatPay:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FakeWechatPay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The HTTPS listener with ``tls=True`` (APIv3 and APIv2 alike), else plain HTTP."""
        if self.ca is not None:
            return f"https://127.0.0.1:{self._server.tls_port}/"
        return f"http://127.0.0.1:{self._server.port}/"

    def drop_connections(self) -> None:
        self._server.drop_connections()

    @property
    def connections(self) -> int:
        """How many connections the server has accepted."""
        return self._server.connections

    @property
    def files(self) -> FakeFiles:
        """Uploads and downloads (``_files.py``): ``media``, ``add_bill()``, ``misbehave()``."""
        return self.state["files"]  # type: ignore[no-any-return]

    # --- platform certificates (v3/certificates, see _certificates.py) -----------------
    @property
    def platform_certificates(self) -> PlatformCertificates:
        """``GET v3/certificates``: ``published``, ``mode``, ``downloads``, ``issue()``."""
        return self.state["platform_certificates"]  # type: ignore[no-any-return]

    def rotate_certificate(self, *, days: float = 365) -> PlatformSigner:
        """Publish a new platform certificate and sign every answer with it from now on."""
        return self.platform_certificates.rotate(days=days)

    # --- what a client needs ------------------------------------------------------------
    @property
    def signer(self) -> PlatformSigner:
        return self.certificate_signer if self.mode == "certificate" else self.public_key_signer

    def certs(self) -> dict[str, bytes]:
        """The platform keys a client should trust: the public key and the certificate."""
        return {
            self.public_key_signer.serial: self.public_key_signer.public,
            self.certificate_signer.serial: self.certificate_signer.public,
        }

    def client_options(self, merchant: Merchant | None = None) -> dict[str, Any]:
        m = merchant or self.merchant
        options: dict[str, Any] = {
            "mchid": m.mchid,
            "serial": m.serial,
            "private_key": private_pem(m.private_key),
            "certs": self.certs(),
            "apiv3_key": m.apiv3_key,
            "secret": m.secret,
            "base_url": self.base_url,
        }
        if self.ca is not None:
            # The merchant API certificate for security=True, and trust in the test CA.
            options["merchant_cert"] = self.ca.client_pem(m.mchid, m.private_key)
            options["merchant_key"] = options["private_key"]
            options["verify"] = self.ca.client_context()
        return options

    def client(self, **overrides: Any) -> Client:
        """A client for this server's merchant, trusting its keys; ``overrides`` win."""
        from .._client import Client

        return Client(**{**self.client_options(), **overrides})

    def __repr__(self) -> str:
        where = self.base_url if self._server.port else "stopped"
        return (
            f"<FakeWechatPay {where} mode={self.mode!r} mchid={self.merchant.mchid!r} "
            f"requests={len(self.requests)}>"
        )

    # --- notifications to the merchant (logic in _notify.py) ----------------------------
    def notification(
        self, event_type: str, resource: Mapping[str, Any], **options: Any
    ) -> tuple[dict[str, str], bytes]:
        """The headers and body of an APIv3 notification, signed and encrypted as WeChat Pay
        does, without sending it: feed them to ``client.notifications.parse`` or your handler.

        ``options``: ``id=``, ``summary=``, ``original_type=``, ``now=``, ``fault=``.
        """
        from . import _notify

        return _notify.build_notification(self, event_type, resource, **options)

    def v2_notification(
        self, fields: Mapping[str, Any], **options: Any
    ) -> tuple[dict[str, str], bytes]:
        """The headers and XML body of an APIv2 payment (``refund=True``: refund)
        notification, without sending it. ``options``: ``refund=``, ``sign_type=``, ``fault=``.
        """
        from . import _notify

        return _notify.build_v2_notification(self, fields, **options)

    async def send_notification(
        self, url: str, event_type: str, resource: Mapping[str, Any], **options: Any
    ) -> httpx.Response:
        """POST an APIv3 notification, signed and encrypted as WeChat Pay does, to ``url``.

        ``options``: ``id=``, ``summary=``, ``original_type=``, ``now=``, ``fault=`` (one of
        ``_notify.NOTIFICATION_FAULTS``), ``timeout=``.
        """
        from . import _notify

        timeout = options.pop("timeout", 10.0)
        headers, body = _notify.build_notification(self, event_type, resource, **options)
        return await _notify.post(url, headers, body, timeout=timeout)

    def send_notification_sync(
        self, url: str, event_type: str, resource: Mapping[str, Any], **options: Any
    ) -> httpx.Response:
        """The blocking twin of ``send_notification``."""
        from . import _notify

        timeout = options.pop("timeout", 10.0)
        headers, body = _notify.build_notification(self, event_type, resource, **options)
        return _notify.post_sync(url, headers, body, timeout=timeout)

    async def send_v2_notification(
        self, url: str, fields: Mapping[str, Any], **options: Any
    ) -> httpx.Response:
        """POST an APIv2 payment notification (``refund=True``: a refund one) to ``url``.

        ``options``: ``refund=``, ``sign_type=``, ``fault=``, ``timeout=``.
        """
        from . import _notify

        timeout = options.pop("timeout", 10.0)
        headers, body = _notify.build_v2_notification(self, fields, **options)
        return await _notify.post(url, headers, body, timeout=timeout)

    def send_v2_notification_sync(
        self, url: str, fields: Mapping[str, Any], **options: Any
    ) -> httpx.Response:
        """The blocking twin of ``send_v2_notification``."""
        from . import _notify

        timeout = options.pop("timeout", 10.0)
        headers, body = _notify.build_v2_notification(self, fields, **options)
        return _notify.post_sync(url, headers, body, timeout=timeout)

    # --- behaviour ----------------------------------------------------------------------
    def route(self, method: str, template: str, handler: Handler) -> None:
        """Answer ``method template`` with ``handler`` (replacing an earlier route)."""
        pattern, names = _compile(template)
        route = _Route(method.upper(), template, pattern, names, handler)
        with self._lock:
            self._routes = [
                r for r in self._routes if (r.method, r.template) != (route.method, template)
            ]
            self._routes.insert(0, route)

    def catch_all(self, enabled: bool = True) -> None:
        """Answer every endpoint: requests no route matches get an echo (``_catchall.py``)."""
        self._catch_all = enabled

    def fail(
        self,
        method: str,
        template: str,
        code: str,
        message: str | None = None,
        *,
        status: int = 400,
        retry_after: float | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``method template`` with a business error.

        APIv3: ``status`` with ``{"code": code, "message": message}``, signed as WeChat Pay
        signs errors (``retry_after`` adds a ``Retry-After`` header: ``fail(..., "FREQUENCY_
        LIMITED", status=429, retry_after=1)``). APIv2 (``v2/...``): a signed XML answer with
        ``result_code`` FAIL and ``err_code``/``err_code_des`` (``status`` is ignored: WeChat
        Pay answers those with 200). The request is still checked and recorded first.
        """
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        text = message if message is not None else code
        if template.startswith("v2/"):
            reply = Reply(
                200,
                xml={
                    "return_code": "SUCCESS",
                    "return_msg": "OK",
                    "result_code": "FAIL",
                    "err_code": code,
                    "err_code_des": text,
                },
            )
        else:
            if not 400 <= status <= 599:
                raise ValueError(f"status must be 4xx or 5xx, got {status}")
            headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
            reply = Reply(status, json={"code": code, "message": text}, headers=headers)
        with self._lock:
            self._faults.append(_Fault("reply", times, template, 0.0, reply))

    def misbehave(
        self, kind: str, *, times: int = 1, template: str | None = None, delay: float = 1.0
    ) -> None:
        """Make the next ``times`` answers (to ``template``, if given) go wrong as ``kind``."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; known: {sorted(FAULTS)}")
        with self._lock:
            self._faults.append(_Fault(kind, times, template, delay))

    def reset(self) -> None:
        """Forget recorded requests, pending faults, state, custom routes and catch-all mode."""
        with self._lock:
            self.requests.clear()
            self._faults.clear()
            self.state.clear()
            self._routes = []
            self._server.connections = 0
            self._catch_all = False
        self.mode = "public_key"
        from . import _seeds

        _seeds.install(self)

    def next_id(self, prefix: str = "") -> str:
        return f"{prefix}{int(time.time())}{next(self._ids):08d}"

    def _take_fault(self, template: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.template is None or fault.template == template:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # --- the request path ---------------------------------------------------------------
    async def _handle(self, http: HTTPRequest) -> HTTPReply | None:
        path, _, raw_query = http.target.partition("?")
        if path.startswith("/hk/v3/"):
            # The domestic entry to the cross-border APIs (v3/statements): same endpoints.
            path = path[3:]
        if path.startswith("/v3/") or path == "/v3":
            return await self._handle_v3(http, path, raw_query)
        from . import _v2 as _v2fake

        return await _v2fake.handle(self, http, path, raw_query)

    def _match(self, method: str, path: str) -> tuple[_Route, dict[str, str]] | None:
        for route in self._routes:
            if route.method != method:
                continue
            found = route.pattern.match(path)
            if found:
                return route, {
                    n: unquote(v) for n, v in zip(route.names, found.groups(), strict=True)
                }
        if self._catch_all:
            from ._catchall import route_for

            return route_for(method, path), {}
        return None

    async def _handle_v3(self, http: HTTPRequest, path: str, raw_query: str) -> HTTPReply | None:
        request = FakeRequest(
            method=http.method,
            path=path,
            query=dict(parse_qsl(raw_query, keep_blank_values=True)),
            headers=http.headers,
            body=http.body,
            body_file=http.body_file,
        )
        try:
            request.mchid = self.check_v3_signature(http, request.body)
        except VerificationError as exc:
            self.requests.append(request)
            return self._answer(401, {"code": "SIGN_ERROR", "message": f"签名错误: {exc}"}, None)
        matched = self._match(http.method, path.lstrip("/"))
        if matched is None:
            self.requests.append(request)
            return self._answer(404, {"code": "NOT_FOUND", "message": "no such endpoint"}, None)
        route, request.params = matched
        request.template = route.template
        content_type = http.headers.get("Content-Type", "")
        if http.body and content_type.startswith("application/json"):
            try:
                request.data = json.loads(http.body)
            except ValueError:
                self.requests.append(request)
                return self._answer(
                    400, {"code": "PARAM_ERROR", "message": "body is not JSON"}, None
                )
        self.requests.append(request)
        fault = self._take_fault(route.template)
        if fault is not None and fault.kind == "close_connection":
            return None
        if fault is not None and fault.kind == "status_500":
            return self._answer(500, {"code": "SYSTEM_ERROR", "message": "系统错误"}, fault)
        if fault is not None and fault.kind == "status_429":
            return self._answer(429, {"code": "FREQUENCY_LIMITED", "message": "频率超限"}, fault)
        if fault is not None and fault.reply is not None:
            result: Any = fault.reply
        else:
            result = route.handler(request)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, HTTPReply):
            return result  # answered as is: a streamed, unsigned file download (_files.py)
        reply = result if isinstance(result, Reply) else Reply(200, json=result)
        return self._answer(reply.status, reply.json, fault, body=reply.body, headers=reply.headers)

    def check_v3_signature(self, http: HTTPRequest, body: bytes) -> str:
        """The mchid of a correctly signed request; VerificationError otherwise."""
        auth = http.headers.get("Authorization")
        if not auth:
            raise VerificationError("no Authorization header")
        fields = _v3.parse_authorization(auth)
        merchant = self.merchants.get(fields["mchid"])
        if merchant is None:
            raise VerificationError(f"unknown mchid {fields['mchid']}")
        if fields["serial_no"] != merchant.serial:
            raise VerificationError("serial_no is not the merchant's certificate serial")
        if abs(time.time() - int(fields["timestamp"])) > _v3.MAX_SKEW:
            raise VerificationError("timestamp is stale")
        signed_body = self.signed_body(http, body)
        message = _v3.request_message(
            http.method, http.target, fields["timestamp"], fields["nonce_str"], signed_body
        )
        if not crypto.verify_sha256_rsa(
            message, fields["signature"], merchant.public_key
        ):
            raise VerificationError("signature does not verify")
        return merchant.mchid

    @staticmethod
    def signed_body(http: HTTPRequest, body: bytes) -> bytes:
        """What the merchant signed: the body, or the ``meta`` part of a multipart upload."""
        if http.headers.get("Content-Type", "").startswith("multipart/form-data"):
            from ._multipart import meta_part

            spooled = http.body_file
            return meta_part(http.headers["Content-Type"], body if spooled is None else spooled)
        return body

    def _answer(
        self,
        status: int,
        payload: Any,
        fault: _Fault | None,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HTTPReply:
        if body is None:
            body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        kind = fault.kind if fault is not None else None
        reply_headers = [("Request-ID", self.next_id("08"))]
        if body and not (headers and "Content-Type" in headers):
            reply_headers.append(("Content-Type", "application/json; charset=utf-8"))
        reply_headers.extend((headers or {}).items())
        digest = (headers or {}).get(_v3.STATEMENT_DIGEST)
        if kind != "no_signature" and not (headers and headers.get("X-Unsigned")):
            # A statement's signature covers its digest, not the file (see _files.py).
            signed = body if digest is None else _v3.statement_message(digest)
            reply_headers.extend(self.sign_answer(signed, kind))
        if kind == "tamper_body" and digest is not None:
            body += b"tampered\r\n"
            reply_headers = [(k, v) for k, v in reply_headers if k != "Content-Length"]
        elif kind == "tamper_body":
            body = body.replace(b"}", b',"tampered":true}', 1) if body else b"{}"
            reply_headers = [(k, v) for k, v in reply_headers if k != "Content-Length"]
            if status in (204, 304):
                status = 200  # these cannot carry the forged body
        if kind == "reset_mid_answer":
            half = [body[: len(body) // 2]]
            return HTTPReply(status, b"", reply_headers, stream=half, length=len(body), reset=True)
        return HTTPReply(
            status, body, reply_headers, fault.delay if kind == "slow" and fault else 0.0
        )

    def sign_answer(self, body: bytes, kind: str | None = None) -> list[tuple[str, str]]:
        """The ``Wechatpay-*`` headers for ``body``, honouring a signing fault."""
        signer = self.signer
        timestamp = str(int(time.time()) - (360 if kind == "stale_timestamp" else 0))
        nonce = secrets.token_hex(16)
        signature = crypto.sign_sha256_rsa(
            _v3.response_message(timestamp, nonce, body), signer.private_key
        )
        if kind == "tamper_signature":
            signature = ("A" if signature[0] != "A" else "B") + signature[1:]
        serial = "UNKNOWN" + _hex_serial(8) if kind == "unknown_serial" else signer.serial
        return [
            ("Wechatpay-Timestamp", timestamp),
            ("Wechatpay-Nonce", nonce),
            ("Wechatpay-Signature", signature),
            ("Wechatpay-Serial", serial),
            ("Wechatpay-Signature-Type", _v3.AUTH_SCHEME),
        ]
