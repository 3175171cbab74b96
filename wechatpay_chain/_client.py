"""Client: configuration, connection pools, derived clients and the sync bridge."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import platform
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from functools import lru_cache
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _installed_version
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import httpx
import sniffio
from cryptography.hazmat.primitives.asymmetric import rsa

from . import _paysign, crypto
from ._chain import Chain
from ._exceptions import InvalidArgumentError
from ._middlewares import (
    DecodeAnswer,
    ExpandTemplate,
    RsaSigner,
    SignRequest,
    VerifyAnswer,
    placeholders,
)
from ._mtls import load_merchant_identity
from ._pipeline import Handler, Middleware, Request, Stack
from ._platform import PlatformKeys
from ._sensitive import Encrypted

if TYPE_CHECKING:
    from ._batch import Batches
    from ._bills import Bills
    from ._certificates import Certificates
    from ._logging import MetricsHook
    from ._media import Media
    from ._ratelimit import RateLimit
    from ._retry import RetryPolicy
    from .notifications import Notifications

__all__ = ["DEFAULT_BASE_URL", "Client", "Config"]

DEFAULT_BASE_URL = "https://api.mch.weixin.qq.com/"

# WeChat Pay closes idle connections after about 8 s: expire ours first. 64 requests in
# flight should not churn connections, so the keep-alive pool is as large as the pool.
DEFAULT_LIMITS = httpx.Limits(
    max_connections=128, max_keepalive_connections=128, keepalive_expiry=5.0
)
DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)

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

T = TypeVar("T")

_KEYS_LOCK = threading.Lock()


def _version(name: str) -> str:
    try:
        return _installed_version(name)
    except PackageNotFoundError:
        return "0"


# WeChat Pay requires a User-Agent on APIv3 requests; name ourselves and the stack below us.
USER_AGENT = (
    f"wechatpay-chain/{_version('wechatpay-chain')} httpx/{httpx.__version__} "
    f"({platform.system()}; Python/{platform.python_version()})"
)


@lru_cache(maxsize=64)
def normalize_base_url(value: str, what: str = "base_url") -> str:
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{what} must be a str URL, got {type(value).__name__}")
    url = httpx.URL(value)
    if url.scheme not in ("http", "https") or not url.host:
        raise InvalidArgumentError(f"{what} must be an http(s) URL with a host, got {value!r}")
    if url.query or url.fragment:
        raise InvalidArgumentError(f"{what} must not carry a query or fragment: {value!r}")
    return value if value.endswith("/") else value + "/"


def _optional_str(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(f"{name} must be a non-empty str, got {type(value).__name__}")
    return value


class Config:
    """What a client knows about its merchant. Shared by derived clients; never printed."""

    __slots__ = (
        "apiv3_key",
        "base_url",
        "encrypted",
        "mchid",
        "merchant_cert",
        "merchant_identity",
        "merchant_key",
        "merchant_key_password",
        "platform_keys",
        "private_key",
        "resolve_serial",
        "secret",
        "serial",
    )

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
    ) -> None:
        self.mchid = _optional_str("mchid", mchid)
        self.serial = _optional_str("serial", serial)
        self.private_key: rsa.RSAPrivateKey | None = (
            None if private_key is None else crypto.load_private_key(private_key)
        )
        self.platform_keys = None if certs is None else PlatformKeys(certs)
        self.apiv3_key = self._apiv3_key(apiv3_key)
        self.secret = _optional_str("secret", secret)
        self.merchant_cert = merchant_cert
        self.merchant_key = merchant_key
        self.merchant_key_password = merchant_key_password
        # Loaded and matched now, so a bad certificate fails here, not at the first request.
        self.merchant_identity = load_merchant_identity(
            merchant_cert,
            merchant_key,
            merchant_key_password,
            fallback_key=self.private_key,
            fallback_source=private_key,
        )
        self.base_url = normalize_base_url(base_url)
        #: Awaited by the verifier on an answer signed by an unknown serial; True when the
        #: serial became trusted (set by ``client.certificates.auto_refresh()``).
        self.resolve_serial: Callable[[str], Awaitable[bool]] | None = None
        #: Set once ``client.encrypt`` was used: JSON bodies are then scanned for its values.
        self.encrypted = False
        # serial without private_key is allowed: the key may live in a KMS (with_signer).
        if self.private_key is not None and self.serial is None:
            raise InvalidArgumentError("private_key is given but serial is not: APIv3 needs both")
        if self.serial is not None and self.mchid is None:
            raise InvalidArgumentError("mchid is required with serial and private_key")

    @staticmethod
    def _apiv3_key(value: str | bytes | None) -> bytes | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = value.encode("utf-8")
        if not isinstance(value, bytes):
            raise InvalidArgumentError(
                f"apiv3_key must be str or bytes, got {type(value).__name__}"
            )
        if len(value) != 32:
            raise InvalidArgumentError(f"apiv3_key must be 32 bytes, got {len(value)}")
        return value

    def trusted_keys(self) -> PlatformKeys:
        """The platform keys answers are verified with, created empty when no certs were given
        (a certificate download fills them)."""
        keys = self.platform_keys
        if keys is None:
            with _KEYS_LOCK:
                keys = self.platform_keys
                if keys is None:
                    keys = self.platform_keys = PlatformKeys()
        return keys

    def require_v3(self, need_key: bool = True) -> tuple[str, str]:
        """``(mchid, serial)``, or a clear error naming what an APIv3 request lacks."""
        missing = [
            name
            for name, value in (
                ("mchid", self.mchid),
                ("serial", self.serial),
                ("private_key", self.private_key if need_key else True),
            )
            if value is None
        ]
        if missing:
            raise InvalidArgumentError(
                f"APIv3 requests need mchid, serial and private_key; missing: {', '.join(missing)}"
            )
        assert self.mchid is not None and self.serial is not None
        return self.mchid, self.serial

    def __repr__(self) -> str:
        return f"<Config mchid={self.mchid!r} serial={self.serial!r}>"


def _loop_key() -> object:
    library = sniffio.current_async_library()
    if library == "trio":
        import trio

        return trio.lowlevel.current_trio_token()
    return asyncio.get_running_loop()


class _LoopPools:
    """The httpx clients of one event loop: plain (shared by every merchant), and one mutual
    TLS pool per merchant certificate, made on first use."""

    __slots__ = ("_make", "_secure", "plain")

    def __init__(self, make: Callable[[Config | None], httpx.AsyncClient]) -> None:
        self._make = make
        self.plain = make(None)
        self._secure: dict[Config, httpx.AsyncClient] = {}

    def secure(self, config: Config) -> httpx.AsyncClient:
        """The pool presenting ``config``'s merchant certificate."""
        pool = self._secure.get(config)
        if pool is None:
            pool = self._secure[config] = self._make(config)
        return pool

    async def aclose(self) -> None:
        await self.plain.aclose()
        for pool in self._secure.values():
            await pool.aclose()


class _Portal:
    """A daemon thread running an asyncio loop, where the ``*_sync`` verbs run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                thread = threading.Thread(target=run, name="wechatpay-chain-sync", daemon=True)
                thread.start()
                ready.wait()
                self._thread = thread
                self._loop = loop
            return self._loop

    def run(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        loop = self._loop or self._start()
        if threading.current_thread() is self._thread:
            raise RuntimeError(
                "a *_sync verb was called from the client's own I/O thread (inside a "
                "middleware?): await the async verb there instead"
            )
        # The caller's context goes along, minus sniffio's marker: called from trio (or a
        # trio worker thread) it would make the bridge's asyncio loop look like trio.
        context = contextvars.copy_context()
        context.run(sniffio.current_async_library_cvar.set, None)
        future = context.run(asyncio.run_coroutine_threadsafe, make(), loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def stop(self, closing: Callable[[], Coroutine[Any, Any, None]]) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        if threading.current_thread() is not thread:
            asyncio.run_coroutine_threadsafe(closing(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if threading.current_thread() is not thread:
            thread.join(timeout=10)
            loop.close()


class _Transport:
    """Connection pools per event loop and the sync portal, shared by derived clients."""

    def __init__(self, config: Config, httpx_options: dict[str, Any]) -> None:
        self._config = config
        self._options = httpx_options
        self._pools: dict[object, _LoopPools] = {}
        self._last: tuple[object, _LoopPools] | None = None
        self._ssl_contexts: dict[Config, Any] = {}
        self.portal = _Portal()

    def _make(self, secure: Config | None) -> httpx.AsyncClient:
        """A pool; with ``secure``, one presenting that merchant's certificate (mutual TLS)."""
        options = dict(self._options)
        options.setdefault("limits", DEFAULT_LIMITS)
        options.setdefault("timeout", DEFAULT_TIMEOUT)
        headers = httpx.Headers(options.get("headers"))
        headers.setdefault("User-Agent", USER_AGENT)
        options["headers"] = headers
        if secure is not None:
            from ._mtls import merchant_ssl_context

            if self._options.get("transport") is not None:
                raise InvalidArgumentError(
                    "security=True requests cannot use a custom transport=: the merchant "
                    "certificate is set on the connection pool the client builds"
                )
            context = self._ssl_contexts.get(secure)
            if context is None:
                context = merchant_ssl_context(
                    secure, options.get("verify", True), options.get("trust_env", True)
                )
                self._ssl_contexts[secure] = context
            options["verify"] = context
        return httpx.AsyncClient(**options)

    def current(self) -> _LoopPools:
        key = _loop_key()
        last = self._last
        if last is not None and last[0] is key:
            return last[1]
        pools = self._pools.get(key)
        if pools is None:
            self._forget_closed_loops()
            pools = self._pools[key] = _LoopPools(self._make)
        self._last = (key, pools)
        return pools

    def _forget_closed_loops(self) -> None:
        for key in [k for k in self._pools if isinstance(k, asyncio.AbstractEventLoop)]:
            if key.is_closed():
                del self._pools[key]

    async def aclose_current(self) -> None:
        key = _loop_key()
        pools = self._pools.pop(key, None)
        if self._last is not None and self._last[0] is key:
            self._last = None
        if pools is not None:
            await pools.aclose()

    def close(self) -> None:
        self.portal.stop(self.aclose_current)


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

        Cheap: one process serving many mchids keeps one pool per event loop. It gets the
        default middleware stack for its own configuration; closing it leaves the shared
        pools open (close the client it came from).
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
        merchant = Client.__new__(Client)
        merchant._setup(config, self._transport, default_stack(config), owner=False)
        return merchant

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
        if headers is not None and not isinstance(headers, Mapping):
            raise InvalidArgumentError("headers must be a mapping")
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

    async def _transmit(self, request: Request) -> httpx.Response:
        pools = self._transport.current()
        http = pools.secure(self._config) if request.security else pools.plain
        built = http.build_request(
            request.method,
            request.url,
            headers=request.headers,
            content=request.content,
            timeout=request.timeout if request.timeout is not None else httpx.USE_CLIENT_DEFAULT,
            extensions=request.extensions,
        )
        if request.security:
            return await self._send_secure(http, built, request)
        if request.sink is None:
            return await http.send(built)
        from ._sink import receive_into

        return await receive_into(http, built, request)

    @staticmethod
    async def _send_secure(
        http: httpx.AsyncClient, built: httpx.Request, request: Request
    ) -> httpx.Response:
        try:
            if request.sink is None:
                return await http.send(built)
            from ._sink import receive_into

            return await receive_into(http, built, request)
        except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError) as exc:
            # TLS 1.3 reports a refused client certificate on the first read, as a bare error
            # or as a disconnect.
            raise type(exc)(
                f"security=True request to {built.url.host} failed at the TLS layer or the "
                f"connection dropped; if it persists, check that merchant_cert is the merchant's "
                f"current API certificate ({type(exc).__name__}: {exc})",
                request=built,
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
