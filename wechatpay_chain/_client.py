"""Client: the chain's root, derived clients, building and sending requests."""

from __future__ import annotations

import inspect
import socket
import ssl
from collections.abc import Awaitable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import httpx

from . import _paysign, crypto
from ._chain import Chain
from ._config import DEFAULT_BASE_URL, Config, normalize_base_url
from ._exceptions import InvalidArgumentError
from ._middlewares import (
    DecodeAnswer,
    ExpandTemplate,
    RsaSigner,
    SignRequest,
    VerifyAnswer,
    placeholders,
)
from ._pipeline import Handler, Middleware, Request, Stack
from ._sensitive import Encrypted
from ._transport import _Pool, _Transport

if TYPE_CHECKING:
    from ._batch import Batches
    from ._bills import Bills
    from ._certificates import Certificates
    from ._logging import MetricsHook
    from ._media import Media
    from ._ratelimit import RateLimit
    from ._retry import RetryPolicy
    from .notifications import Notifications

__all__ = ["DEFAULT_BASE_URL", "Client", "Config", "normalize_base_url"]

_OPTIONS = frozenset(
    {
        "json",
        "xml",
        "query",
        "headers",
        "body",
        "security",
        "nonceless",
        "base_url",
        "base_uri",
        "sink",
        "timeout",
        "extensions",
        "retry",
        "idempotent",
    }
)
_HTTPX_OPTIONS = frozenset(inspect.signature(httpx.AsyncClient.__init__).parameters) - {
    "self",
    "base_url",
    "cert",
}

class Client:
    """A WeChat Pay merchant client; attribute and item access start a chain (DESIGN.md §3)."""

    def __init__(
        self,
        *,
        mchid: str | None = None,
        serial: str | None = None,
        private_key: crypto.PrivateKeyLike | None = None,
        certs: Mapping[str, object] | None = None,
        apiv3_key: str | bytes | None = None,
        secret: str | None = None,
        merchant_cert: object = None,
        merchant_key: object = None,
        merchant_key_password: str | bytes | None = None,
        base_url: str = DEFAULT_BASE_URL,
        base_uri: str | None = None,
        retry: RetryPolicy | None = None,
        rate_limit: RateLimit | None = None,
        log_requests: bool = False,
        metrics: MetricsHook | None = None,
        parallel_signing: bool = True,
        **httpx_options: Any,
    ) -> None:
        unknown = sorted(set(httpx_options) - _HTTPX_OPTIONS)
        if unknown:
            raise InvalidArgumentError(
                f"unknown Client option(s) {unknown}; httpx options allowed: "
                f"{sorted(_HTTPX_OPTIONS)}"
            )
        config = Config(
            mchid=mchid,
            serial=serial,
            private_key=private_key,
            certs=certs,
            apiv3_key=apiv3_key,
            secret=secret,
            merchant_cert=merchant_cert,
            merchant_key=merchant_key,
            merchant_key_password=merchant_key_password,
            base_url=base_uri if base_uri is not None else base_url,
        )
        if not isinstance(parallel_signing, bool):
            raise InvalidArgumentError(
                f"parallel_signing must be True or False, got {type(parallel_signing).__name__}"
            )
        config.parallel_signing = parallel_signing
        stack = default_stack(config)
        if retry is not None or rate_limit is not None or log_requests or metrics is not None:
            from ._retry import resilient_stack

            stack = resilient_stack(
                stack,
                retry=retry,
                rate_limit=rate_limit,
                log_requests=log_requests,
                metrics=metrics,
            )
        self._setup(config, _Transport(config, httpx_options), stack)

    def _setup(
        self, config: Config, transport: _Transport, stack: Stack, owner: bool = True
    ) -> None:
        self._config = config
        self._transport = transport
        #: False for ``for_merchant`` clients: closing them leaves the shared pools open.
        self._owns_transport = owner
        self._stack = stack
        self._handler = stack.compose(self._transmit)
        self._root = Chain(self, "")

    def _derive(self, stack: Stack) -> Client:
        derived = Client.__new__(Client)
        derived._setup(self._config, self._transport, stack, self._owns_transport)
        return derived

    # --- chain entry points -------------------------------------------------------------
    def __getattr__(self, name: str) -> Chain:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._root, name)  # type: ignore[no-any-return]

    def __getitem__(self, path: str) -> Chain:
        return self._root[path]

    def chain(self, path: str) -> Chain:
        """The node for ``path``, e.g. ``client.chain("v3/pay/transactions/native")``."""
        return self._root[path]

    @property
    def v2(self) -> Chain:
        return self._root.v2

    @property
    def v3(self) -> Chain:
        return self._root.v3

    # --- the pipeline -------------------------------------------------------------------
    @property
    def config(self) -> Config:
        return self._config

    @property
    def middlewares(self) -> Stack:
        """The named middleware stack, outermost first."""
        return self._stack

    def without(self, *names: str) -> Client:
        """A client sharing this one's connections, without the named middlewares."""
        return self._derive(self._stack.without(*names))

    def replace(self, name: str, middleware: Middleware) -> Client:
        """A client sharing this one's connections, with ``name`` replaced."""
        return self._derive(self._stack.replace(name, middleware))

    def insert(
        self,
        name: str,
        middleware: Middleware,
        *,
        before: str | None = None,
        after: str | None = None,
    ) -> Client:
        """A client sharing this one's connections, with ``middleware`` added as ``name``."""
        return self._derive(self._stack.insert(name, middleware, before=before, after=after))

    def with_signer(self, rsa_sign: RsaSigner) -> Client:
        """A client whose APIv3 signatures come from ``rsa_sign(message) -> base64`` (KMS/HSM)."""
        return self.replace("signer", SignRequest(self._config, rsa_sign))

    # --- sensitive fields and client-side payment parameters ---------------------------
    def encrypt(self, text: str) -> Encrypted:
        """Encrypt a sensitive field (name, phone, ID number) for WeChat Pay.

        Uses the platform public key (``PUB_KEY_ID_…``) if ``certs`` has one, else the
        certificate that expires last. A JSON body holding the result automatically carries
        the matching ``Wechatpay-Serial`` header.
        """
        keys = self._config.platform_keys
        if keys is None or not len(keys):
            raise InvalidArgumentError("encrypt needs certs: a platform public key or certificate")
        entry = keys.newest()
        self._config.encrypted = True
        return Encrypted(crypto.rsa_encrypt_oaep(text, entry.key), entry.serial)

    def decrypt(self, ciphertext: str) -> str:
        """Decrypt a sensitive field of an answer with the merchant private key (RSA-OAEP)."""
        if self._config.private_key is None:
            raise InvalidArgumentError("decrypt needs private_key (the merchant API key)")
        return crypto.rsa_decrypt_oaep(ciphertext, self._config.private_key)

    def jsapi_params(self, appid: str, prepay_id: str) -> dict[str, str]:
        """The signed ``requestPayment`` parameters for JSAPI / mini programs (APIv3)."""
        if self._config.private_key is None:
            raise InvalidArgumentError("jsapi_params needs private_key")
        return _paysign.jsapi_params(appid, prepay_id, self._config.private_key)

    def app_params(self, appid: str, prepay_id: str) -> dict[str, str]:
        """The signed parameters for the APP SDK (APIv3); ``partnerid`` is the client's mchid."""
        mchid, _ = self._config.require_v3()
        assert self._config.private_key is not None
        return _paysign.app_params(appid, mchid, prepay_id, self._config.private_key)

    def jsapi_params_v2(self, appid: str, prepay_id: str, sign_type: str = "MD5") -> dict[str, str]:
        """The signed JSAPI parameters for an APIv2 order (``paySign`` with ``secret``)."""
        secret = self._require_secret()
        return _paysign.jsapi_params_v2(appid, prepay_id, secret, sign_type=sign_type)

    def app_params_v2(self, appid: str, prepay_id: str, sign_type: str = "MD5") -> dict[str, str]:
        """The signed APP parameters for an APIv2 order; ``partnerid`` is the client's mchid."""
        if self._config.mchid is None:
            raise InvalidArgumentError("app_params_v2 needs mchid")
        return _paysign.app_params_v2(
            appid, self._config.mchid, prepay_id, self._require_secret(), sign_type=sign_type
        )

    def _require_secret(self) -> str:
        if self._config.secret is None:
            raise InvalidArgumentError("secret (the APIv2 key) is required")
        return self._config.secret

    # --- services: each lives in its own module and is reached from here ---------------
    @property
    def batch(self) -> Batches:
        """Resumable batches: ``await client.batch(send, items, journal="run.sqlite")``."""
        from ._batch import Batches

        return Batches(self)

    @property
    def certificates(self) -> Certificates:
        """Platform certificates: ``download()``, ``refresh()``, ``auto_refresh()``."""
        from ._certificates import Certificates

        return Certificates(self)

    @property
    def media(self) -> Media:
        """Uploads: ``await client.media.upload(path)``; ``form()`` for the chain forms."""
        from ._media import Media

        return Media(self)

    @property
    def bills(self) -> Bills:
        """Bill downloads, streamed and hash-checked: ``download()``, ``download_v2()``..."""
        from ._bills import Bills

        return Bills(self)

    @property
    def notifications(self) -> Notifications:
        """Verify, decrypt and answer WeChat Pay's notifications (webhooks); made once."""
        found: Notifications | None = self.__dict__.get("_notifications")
        if found is None:
            from .notifications import Notifications

            found = self.__dict__["_notifications"] = Notifications(self._config)
        return found

    def for_merchant(
        self,
        *,
        mchid: str,
        serial: str | None = None,
        private_key: crypto.PrivateKeyLike | None = None,
        certs: Mapping[str, object] | None = None,
        apiv3_key: str | bytes | None = None,
        secret: str | None = None,
        merchant_cert: object = None,
        merchant_key: object = None,
        merchant_key_password: str | bytes | None = None,
        base_url: str | None = None,
    ) -> Client:
        """A client for another merchant sharing this one's connection pools and sync thread.

        Cheap: one process serving many mchids keeps one pool per event loop. Its stack is
        this client's: the transformer, signer and verifier are rebuilt for the new merchant
        (a custom signer, e.g. a KMS one, is not carried over: it signs as this merchant),
        every other middleware (retry, limiter, logger, your own) is shared as it is.
        Closing it leaves the shared pools open (close the client it came from).
        """
        config = Config(
            mchid=mchid,
            serial=serial,
            private_key=private_key,
            certs=certs,
            apiv3_key=apiv3_key,
            secret=secret,
            merchant_cert=merchant_cert,
            merchant_key=merchant_key,
            merchant_key_password=merchant_key_password,
            base_url=base_url if base_url is not None else self._config.base_url,
        )
        config.parallel_signing = self._config.parallel_signing
        merchant = Client.__new__(Client)
        merchant._setup(config, self._transport, self._stack_for(config), owner=False)
        return merchant

    def _stack_for(self, config: Config) -> Stack:
        """This client's stack with the merchant-bound middlewares rebuilt for ``config``."""
        bound = {name: mw for name, mw in default_stack(config) if name != "template"}
        return Stack((name, bound.get(name, mw)) for name, mw in self._stack)

    # --- sending ------------------------------------------------------------------------
    def _build(self, method: str, template: str, options: dict[str, Any]) -> Request:
        api: Literal["v2", "v3"] = "v2" if template.startswith("v2/") else "v3"
        params: dict[str, str] = {}
        for name in placeholders(template):
            value = options.pop(name, None)
            if value is None:
                raise InvalidArgumentError(f"placeholder {{{name}}} of {template!r} has no value")
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise InvalidArgumentError(
                    f"placeholder {{{name}}} must be str or int, got {type(value).__name__}"
                )
            text = str(value)
            if not text or text in (".", ".."):
                raise InvalidArgumentError(f"placeholder {{{name}}} must not be {text!r}")
            params[name] = text
        unknown = set(options) - _OPTIONS
        if unknown:
            raise InvalidArgumentError(
                f"unknown option(s) {sorted(unknown)} for {template!r}: neither an option nor "
                f"one of its placeholders {list(placeholders(template))}"
            )
        base_url = options.get("base_url") or options.get("base_uri")
        json_value = options.get("json")
        headers = options.get("headers")
        if headers is not None:
            if not isinstance(headers, Mapping):
                raise InvalidArgumentError("headers must be a mapping")
            _check_headers(headers)
        request = Request(
            method=method,
            template=template,
            api=api,
            params=params,
            base_url=normalize_base_url(base_url) if base_url else self._config.base_url,
            json=json_value,
            has_json=json_value is not None,
            xml=options.get("xml"),
            query=options.get("query"),
            headers=dict(headers) if headers else {},
            body=options.get("body"),
            security=bool(options.get("security", False)),
            nonceless=bool(options.get("nonceless", False)),
            sink=options.get("sink"),
            timeout=options.get("timeout"),
            extensions=options.get("extensions"),
        )
        retry, idempotent = options.get("retry"), options.get("idempotent")
        if retry is not None or idempotent is not None:
            from ._retry import check_call_options

            check_call_options(retry, idempotent)
            request.retry, request.idempotent = retry, idempotent
        self._check_body(request)
        return request

    @staticmethod
    def _check_body(request: Request) -> None:
        given = [n for n in ("json", "xml", "body") if getattr(request, n) is not None]
        if len(given) > 1:
            raise InvalidArgumentError(f"give one of json=, xml=, body=; got {given}")
        if request.api == "v3":
            for name in ("xml", "security", "nonceless"):
                if getattr(request, name):
                    raise InvalidArgumentError(
                        f"{name}= is for APIv2 (v2/...) requests, not {request.template!r}"
                    )
        elif request.has_json:
            raise InvalidArgumentError(
                f"json= is for APIv3; {request.template!r} is APIv2: use xml="
            )
        if request.query is not None and not isinstance(request.query, Mapping):
            raise InvalidArgumentError("query must be a mapping")
        if request.xml is not None and not isinstance(request.xml, Mapping):
            raise InvalidArgumentError("xml must be a mapping of field -> value")

    def _send(
        self, method: str, template: str, options: dict[str, Any]
    ) -> Awaitable[httpx.Response]:
        request = self._build(method, template, options)
        if request.retry is not None:
            return self._retrying_handler(request)(request)
        return self._handler(request)

    def _retrying_handler(self, request: Request) -> Handler:
        """The handler for a call with ``retry=``: this stack, with a ``retry`` stage if none."""
        if request.retry is False or "retry" in self._stack.names:
            return self._handler
        handler: Handler | None = self.__dict__.get("_retry_handler")
        if handler is None:
            from ._retry import RetryPolicy, resilient_stack

            stack = resilient_stack(self._stack, retry=RetryPolicy())
            handler = self.__dict__["_retry_handler"] = stack.compose(self._transmit)
        return handler

    def _send_sync(self, method: str, template: str, options: dict[str, Any]) -> httpx.Response:
        request = self._build(method, template, options)
        handler = self._handler if request.retry is None else self._retrying_handler(request)

        async def call() -> httpx.Response:
            return await handler(request)

        return self._transport.portal.run(call)

    def _transmit(self, request: Request) -> Awaitable[httpx.Response]:
        pools = self._transport.current()
        if request.security:
            return self._send_secure(pools.secure(self._config), request)
        pool = pools.plain
        content = request.content
        if pool.direct and request.sink is None and (content is None or type(content) is bytes):
            return pool.send(request)  # straight to the transport: the hot path
        return self._dispatch(pool, request)

    @staticmethod
    async def _dispatch(pool: _Pool, request: Request) -> httpx.Response:
        content = request.content
        if pool.direct and request.sink is None and (content is None or type(content) is bytes):
            return await pool.send(request)  # straight to the transport: the hot path
        http = pool.http
        built = http.build_request(
            request.method,
            request.url,
            headers=request.headers,
            content=content,
            timeout=request.timeout if request.timeout is not None else httpx.USE_CLIENT_DEFAULT,
            extensions=request.extensions,
        )
        if request.sink is None:
            return await http.send(built)
        from ._sink import receive_into

        return await receive_into(http, built, request)

    @staticmethod
    async def _send_secure(pool: _Pool, request: Request) -> httpx.Response:
        try:
            return await Client._dispatch(pool, request)
        except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError) as exc:
            host = httpx.URL(request.url).host
            raise type(exc)(
                f"security=True request to {host} {_tls_failure(exc)} "
                f"({type(exc).__name__}: {exc})",
                request=exc._request or httpx.Request(request.method, request.url),
            ) from exc

    # --- lifecycle ----------------------------------------------------------------------
    async def aclose(self) -> None:
        """Close this event loop's connections (and the sync bridge's, if started)."""
        if not self._owns_transport:
            return
        await self._transport.aclose_current()
        if self._transport.portal._loop is not None:
            import anyio.to_thread

            await anyio.to_thread.run_sync(self._transport.close)

    def close(self) -> None:
        """Close the sync bridge's connections and stop its thread."""
        if self._owns_transport:
            self._transport.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        c = self._config
        return (
            f"<Client mchid={c.mchid!r} serial={c.serial!r} base_url={c.base_url!r} "
            f"middlewares={list(self._stack.names)}>"
        )


def _check_headers(headers: Mapping[Any, Any]) -> None:
    """Header names and values are ASCII ``str`` or ``bytes``; the value is never echoed."""
    for name, value in headers.items():
        if not isinstance(name, str | bytes) or not isinstance(value, str | bytes):
            raise InvalidArgumentError(
                f"headers must map str to str; got {type(name).__name__} -> "
                f"{type(value).__name__} for {str(name)[:40]!r}"
            )
        if not name.isascii() or not value.isascii():
            raise InvalidArgumentError(f"header {name[:40]!r} must be ASCII (name and value)")


def default_stack(config: Config) -> Stack:
    """template -> transformer -> signer -> verifier -> transport."""
    return Stack(
        [
            ("template", ExpandTemplate()),
            ("transformer", DecodeAnswer(config)),
            ("signer", SignRequest(config)),
            ("verifier", VerifyAnswer(config)),
        ]
    )


def _tls_failure(exc: BaseException) -> str:
    """What went wrong in a mutual-TLS exchange, blaming the merchant certificate only when the
    server is what refused it."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            # Our side refused the server's certificate: merchant_cert played no part.
            return (
                "failed: the server's certificate did not verify "
                f"({cause.verify_message}); check verify= (the trusted CA bundle)"
            )
        if isinstance(cause, ssl.SSLError):
            if "ALERT" in str(cause).upper() or "CERTIFICATE_REQUIRED" in str(cause).upper():
                return (
                    "was refused by the server during the TLS handshake; check that "
                    "merchant_cert is the merchant's current API certificate"
                )
            return "failed in the TLS handshake"
        if isinstance(cause, ConnectionRefusedError | socket.gaierror):
            return "could not connect"
        cause = cause.__cause__ or cause.__context__
    # TLS 1.3 reports a refused client certificate on the first read, as a bare error or as a
    # disconnect; it is one guess among others, so it is worded as one.
    return (
        "failed at the TLS layer or the connection dropped; if it persists, check that "
        "merchant_cert is the merchant's current API certificate"
    )
