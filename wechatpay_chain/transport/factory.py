"""How a client's connection pools are made: our engine or httpx's transport, TLS contexts.

On asyncio, unless the client was given a transport, mounts, a proxy (or the environment
names one) or HTTP/2, a pool's transport is the engine (``engine.py``); elsewhere httpx's
own. Unless auth, cookies, params, event hooks or redirects are configured, requests go to
that transport directly (``Pool.send``).
"""

from __future__ import annotations

import os
import platform
import ssl
import threading
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _installed_version
from typing import Any
from urllib.request import getproxies

import httpx
import sniffio

from .._exceptions import InvalidArgumentError
from ..crypto.identity import MerchantIdentity
from .decoding import ACCEPT_ENCODING
from .engine import DEFAULT_LIMITS, AsyncEngine
from .mtls import merchant_ssl_context
from .pool import Pool

__all__ = ["DEFAULT_LIMITS", "DEFAULT_TIMEOUT", "HTTPCORE_LIMITS", "USER_AGENT", "PoolFactory"]

#: For httpx's own transport (trio, proxies, HTTP/2): httpcore walks every pooled connection
#: on each request, so a small keep-alive pool is faster (bench/README.md has the numbers).
HTTPCORE_LIMITS = httpx.Limits(
    max_connections=128, max_keepalive_connections=10, keepalive_expiry=5.0
)
DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)

#: Options that put a transport of someone else's under the client (or a proxy in front).
_NOT_OURS = ("transport", "mounts", "proxy")
#: Client-level httpx features that only ``AsyncClient.send`` implements.
_FULL_PATH = ("auth", "params", "cookies", "event_hooks", "follow_redirects", "default_encoding")


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

_SHARED_CONTEXTS: dict[tuple[Any, ...], ssl.SSLContext] = {}
_SHARED_LOCK = threading.Lock()


def _shared_ssl_context(verify: bool, trust_env: bool) -> ssl.SSLContext:
    """httpx's default context for ``verify=True``/``False``, made once per process
    (loading the CA bundle is costly)."""
    env = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")) if trust_env else ()
    key = (verify, trust_env, *env)
    context = _SHARED_CONTEXTS.get(key)
    if context is None:
        with _SHARED_LOCK:
            context = _SHARED_CONTEXTS.get(key)
            if context is None:
                context = httpx.create_ssl_context(verify=verify, trust_env=trust_env)
                _SHARED_CONTEXTS[key] = context
    return context


def _environment_proxies(trust_env: bool) -> bool:
    """Would httpx route requests through a proxy taken from the environment?"""
    if not trust_env:
        return False
    proxies = getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


class PoolFactory:
    """Makes the pools of one client (and its derived clients) from its httpx options."""

    #: False: httpx's own transport everywhere (benchmarks and tests compare both).
    use_engine = True

    def __init__(self, httpx_options: dict[str, Any]) -> None:
        self._options = httpx_options
        self._ssl_contexts: dict[MerchantIdentity, ssl.SSLContext] = {}
        self._ssl_context: ssl.SSLContext | None = None

    def _plain_ssl_context(self) -> ssl.SSLContext:
        """The context for https without a merchant certificate: made once per client (not
        per event loop), and shared between clients when ``verify`` is True or False."""
        context = self._ssl_context
        if context is None:
            verify = self._options.get("verify", True)
            trust_env = bool(self._options.get("trust_env", True))
            if isinstance(verify, ssl.SSLContext):
                context = verify
            elif isinstance(verify, bool) and not self._options.get("http2"):
                # (httpcore sets ALPN on the context it is given: HTTP/2 gets its own)
                context = _shared_ssl_context(verify, trust_env)
            else:
                context = httpx.create_ssl_context(verify=verify, trust_env=trust_env)
            self._ssl_context = context
        return context

    def __call__(self, identity: MerchantIdentity | None = None, secure: bool = False) -> Pool:
        """A pool; with ``secure``, one presenting ``identity`` (mutual TLS)."""
        options = dict(self._options)
        options.setdefault("timeout", DEFAULT_TIMEOUT)
        headers = httpx.Headers(options.get("headers"))
        headers.setdefault("User-Agent", USER_AGENT)
        # Only what transport/decoding.py decodes, whatever optional packages are installed.
        headers.setdefault("Accept-Encoding", ACCEPT_ENCODING)
        options["headers"] = headers
        context: ssl.SSLContext | None = None
        if secure:
            if self._options.get("transport") is not None:
                raise InvalidArgumentError(
                    "security=True requests cannot use a custom transport=: the merchant "
                    "certificate is set on the connection pool the client builds"
                )
            context = self._ssl_contexts.get(identity) if identity is not None else None
            if context is None:
                context = merchant_ssl_context(
                    identity, options.get("verify", True), options.get("trust_env", True)
                )
                assert identity is not None
                self._ssl_contexts[identity] = context
        ours = not any(options.get(name) for name in _NOT_OURS) and not _environment_proxies(
            bool(options.get("trust_env", True))
        )
        if not ours:
            options.setdefault("limits", HTTPCORE_LIMITS)
            if context is not None:
                options["verify"] = context
            elif options.get("transport") is None:
                options["verify"] = self._plain_ssl_context()
            return Pool(httpx.AsyncClient(**options), None)
        http1 = bool(options.pop("http1", True))
        http2 = bool(options.pop("http2", False))
        limits = options.pop("limits", None)
        options.pop("verify", None)
        transport: httpx.AsyncBaseTransport
        if (
            self.use_engine
            and http1
            and not http2
            and sniffio.current_async_library() == "asyncio"
        ):
            transport = AsyncEngine(
                ssl_context=context if context is not None else self._plain_ssl_context,
                limits=limits or DEFAULT_LIMITS,
            )
        else:
            transport = httpx.AsyncHTTPTransport(
                verify=context if context is not None else self._plain_ssl_context(),
                http1=http1,
                http2=http2,
                limits=limits or HTTPCORE_LIMITS,
            )
        options["transport"] = transport
        direct = None if any(options.get(name) for name in _FULL_PATH) else transport
        return Pool(httpx.AsyncClient(**options), direct)
