"""Client: the chain's root, derived clients, building and sending requests."""

from __future__ import annotations

import concurrent.futures
import inspect
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from . import crypto
from ._chain import Chain
from ._config import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_ANSWER_SIZE,
    Config,
    MerchantOptions,
    normalize_base_url,
)
from ._exceptions import InvalidArgumentError
from ._options import build_request
from .middlewares.deadline import check_deadline, within
from .middlewares.pipeline import Handler, Middleware, Stack
from .middlewares.sign import RsaSigner, SignRequest
from .middlewares.stack import default_stack, resilient_stack
from .protocol import paysign as _paysign
from .protocol.request import Request
from .protocol.sensitive import Encrypted
from .transport.registry import Connections
from .transport.send import Transmit

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .endpoints import Root as _TypedRoot
    from .middlewares.logging import MetricsHook
    from .middlewares.ratelimit import RateLimit
    from .middlewares.retry import RetryPolicy
    from .notifications import Notifications
    from .services.batch import Batches
    from .services.bills import Bills
    from .services.certificates import Certificates
    from .services.media import Media
else:
    _TypedRoot = object  # the typed face (generated stubs) exists for type checkers only

T = TypeVar("T")

_NOTIFICATIONS_LOCK = threading.Lock()

__all__ = ["DEFAULT_BASE_URL", "Client", "Config", "normalize_base_url"]

_HTTPX_OPTIONS = frozenset(inspect.signature(httpx.AsyncClient.__init__).parameters) - {
    "self",
    "base_url",
    "cert",
}

class Client(_TypedRoot):
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
        private_key_password: str | bytes | None = None,
        base_url: str = DEFAULT_BASE_URL,
        base_uri: str | None = None,
        retry: RetryPolicy | None = None,
        rate_limit: RateLimit | None = None,
        log_requests: bool = False,
        metrics: MetricsHook | None = None,
        parallel_signing: bool = True,
        deadline: float | None = None,
        max_answer_size: int = DEFAULT_MAX_ANSWER_SIZE,
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
            private_key_password=private_key_password,
            base_url=base_uri if base_uri is not None else base_url,
        )
        if not isinstance(parallel_signing, bool):
            raise InvalidArgumentError(
                f"parallel_signing must be True or False, got {type(parallel_signing).__name__}"
            )
        config.parallel_signing = parallel_signing
        config.deadline = check_deadline(deadline)
        if isinstance(max_answer_size, bool) or not isinstance(max_answer_size, int):
            raise InvalidArgumentError(f"max_answer_size must be an int, got {max_answer_size!r}")
        if max_answer_size < 1:
            raise InvalidArgumentError(f"max_answer_size must be > 0, got {max_answer_size}")
        config.max_answer_size = max_answer_size
        stack = default_stack(config)
        if retry is not None or rate_limit is not None or log_requests or metrics is not None:
            stack = resilient_stack(
                stack,
                retry=retry,
                rate_limit=rate_limit,
                log_requests=log_requests,
                metrics=metrics,
            )
        connections = Connections(httpx_options)
        self._setup(config, connections, stack)
        # Dropped without close(): stop the sync bridge when the last client sharing these
        # connections is collected. The callback holds the bridge only, never a client.
        finalizer = weakref.finalize(connections, connections.bridge.stop)
        finalizer.atexit = False  # a daemon thread: nothing to wait for at exit

    def _setup(
        self, config: Config, connections: Connections, stack: Stack, owner: bool = True
    ) -> None:
        self._config = config
        self._connections = connections
        #: False for ``for_merchant`` clients: closing them leaves the shared pools open.
        self._owns_connections = owner
        self._stack = stack
        self._transmit = Transmit(connections, config.merchant_identity, config.max_answer_size)
        self._handler = stack.compose(self._transmit)
        self._root = Chain(self, "")

    def _with_stack(self, stack: Stack) -> Client:
        """A client sharing this one's configuration, connections and bridge, with ``stack``."""
        derived = Client.__new__(Client)
        derived._setup(self._config, self._connections, stack, self._owns_connections)
        return derived

    # --- chain entry points -------------------------------------------------------------
    def __getattr__(self, name: str) -> Chain:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._root, name)  # type: ignore[no-any-return]

    if not TYPE_CHECKING:  # type checkers see the generated overloads of _TypedRoot

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
        return self._with_stack(self._stack.without(*names))

    def replace(self, name: str, middleware: Middleware) -> Client:
        """A client sharing this one's connections, with ``name`` replaced."""
        return self._with_stack(self._stack.replace(name, middleware))

    def insert(
        self,
        name: str,
        middleware: Middleware,
        *,
        before: str | None = None,
        after: str | None = None,
    ) -> Client:
        """A client sharing this one's connections, with ``middleware`` added as ``name``."""
        return self._with_stack(self._stack.insert(name, middleware, before=before, after=after))

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
        from .services.batch import Batches

        return Batches(self)

    @property
    def certificates(self) -> Certificates:
        """Platform certificates: ``download()``, ``refresh()``, ``auto_refresh()``."""
        from .services.certificates import Certificates

        return Certificates(self)

    @property
    def media(self) -> Media:
        """Uploads: ``await client.media.upload(path)``; ``form()`` for the chain forms."""
        from .services.media import Media

        return Media(self)

    @property
    def bills(self) -> Bills:
        """Bill downloads, streamed and hash-checked: ``download()``, ``download_v2()``..."""
        from .services.bills import Bills

        return Bills(self)

    @property
    def notifications(self) -> Notifications:
        """Verify, decrypt and answer WeChat Pay's notifications (webhooks).

        One per merchant configuration: clients derived from this one (``without``,
        ``with_signer``, ...) share it, and so its de-duplication store.
        """
        found: Notifications | None = self._config.notifications
        if found is None:
            from .notifications import Notifications

            with _NOTIFICATIONS_LOCK:
                found = self._config.notifications
                if found is None:
                    found = self._config.notifications = Notifications(self._config)
        return found

    def for_merchant(self, **options: Unpack[MerchantOptions]) -> Client:
        """A client for another merchant sharing this one's connection pools and sync thread.

        Cheap: one process serving many mchids keeps one pool per event loop. Its stack is
        this client's: the transformer, signer and verifier are rebuilt for the new merchant
        (a custom signer, e.g. a KMS one, is not carried over: it signs as this merchant),
        every other middleware (retry, limiter, logger, your own) is shared as it is.
        Closing it leaves the shared pools open (close the client it came from).
        """
        if not options.get("mchid"):
            raise InvalidArgumentError("for_merchant needs mchid: the merchant the client is for")
        if options.get("base_url") is None:
            options["base_url"] = self._config.base_url
        config = Config(**options)
        config.parallel_signing = self._config.parallel_signing
        config.deadline = self._config.deadline
        config.max_answer_size = self._config.max_answer_size
        merchant = Client.__new__(Client)
        merchant._setup(config, self._connections, self._stack_for(config), owner=False)
        return merchant

    def _stack_for(self, config: Config) -> Stack:
        """This client's stack with the merchant-bound middlewares rebuilt for ``config``."""
        bound = {name: mw for name, mw in default_stack(config) if name != "template"}
        return Stack((name, bound.get(name, mw)) for name, mw in self._stack)

    # --- sending ------------------------------------------------------------------------
    def _send(
        self, method: str, template: str, options: dict[str, Any]
    ) -> Awaitable[httpx.Response]:
        config = self._config
        request = build_request(method, template, options, config.base_url, config.deadline)
        handler = self._handler if request.retry is None else self._retrying_handler(request)
        if request.deadline is not None:
            return within(request.deadline, handler, request)
        return handler(request)

    def _retrying_handler(self, request: Request) -> Handler:
        """The handler for a call with ``retry=``: this stack, with a ``retry`` stage if none."""
        if request.retry is False or "retry" in self._stack.names:
            return self._handler
        handler: Handler | None = self.__dict__.get("_retry_handler")
        if handler is None:
            from .middlewares.retry import RetryPolicy

            stack = resilient_stack(self._stack, retry=RetryPolicy())
            handler = self.__dict__["_retry_handler"] = stack.compose(self._transmit)
        return handler

    def _send_sync(self, method: str, template: str, options: dict[str, Any]) -> httpx.Response:
        config = self._config
        request = build_request(method, template, options, config.base_url, config.deadline)
        handler = self._handler if request.retry is None else self._retrying_handler(request)

        async def call() -> httpx.Response:
            if request.deadline is not None:
                return await within(request.deadline, handler, request)
            return await handler(request)

        return self._run_sync(call)

    # --- the sync bridge: the one place every blocking call goes through ----------------
    def _run_sync(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``make()`` on this client's sync bridge and wait for its result."""
        return self._connections.bridge.run(make)

    def _submit_sync(
        self, make: Callable[[], Coroutine[Any, Any, T]]
    ) -> concurrent.futures.Future[T]:
        """Start ``make()`` on this client's sync bridge; cancelling the future cancels it."""
        return self._connections.bridge.submit(make)

    # --- lifecycle ----------------------------------------------------------------------
    async def aclose(self) -> None:
        """Close the client: this event loop's connections now, the sync bridge's (see
        ``close``); other loops' close when those loops end. Later calls raise
        ``ClientClosedError``."""
        if not self._owns_connections:
            return
        connections = self._connections
        connections.mark_closed()
        await connections.aclose_current()
        if connections.bridge.running:
            import anyio.to_thread

            await anyio.to_thread.run_sync(connections.close)
        else:
            connections.close()

    def close(self) -> None:
        """Close the client: stop the sync bridge (its calls still in flight are cancelled
        and raise ``ClientClosedError`` within a bound) and close its connections. Calls
        made afterwards, sync or async, raise ``ClientClosedError``."""
        if self._owns_connections:
            self._connections.close()

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
