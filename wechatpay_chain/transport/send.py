"""The innermost handler: a finished request goes out on the running loop's pool."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Awaitable

import httpx

from .._config import DEFAULT_MAX_ANSWER_SIZE
from ..crypto.identity import MerchantIdentity
from ..protocol.request import Request
from .decoding import read_answer
from .httpcore_guard import retire_tainted
from .pool import Pool
from .registry import Connections
from .sink import receive_into

__all__ = ["Transmit"]


def _direct(pool: Pool, request: Request) -> bool:
    """Whether ``request`` can skip httpx's client: a bytes body, no sink, a direct pool."""
    content = request.content
    return pool.direct and request.sink is None and (content is None or type(content) is bytes)


async def _send_full(pool: Pool, request: Request, limit: int) -> httpx.Response:
    """Through ``AsyncClient.send``: streamed bodies, sinks, client-level httpx features."""
    http = pool.http
    built = http.build_request(
        request.method,
        request.url,
        headers=request.headers,
        content=request.content,
        timeout=request.timeout if request.timeout is not None else httpx.USE_CLIENT_DEFAULT,
        extensions=request.extensions,
    )
    if request.sink is None:
        response = await http.send(built, stream=True)
        await read_answer(response, limit)  # decoded, bounded
        if pool.guard:
            retire_tainted(http._transport)
        return response
    return await receive_into(http, built, request)


async def _send_secure(pool: Pool, request: Request, limit: int) -> httpx.Response:
    try:
        if _direct(pool, request):
            return await pool.send(request, limit)
        return await _send_full(pool, request, limit)
    except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError) as exc:
        raise type(exc)(
            f"security=True request to {httpx.URL(request.url).host} {_tls_failure(exc)} "
            f"({type(exc).__name__}: {exc})",
            request=exc._request or httpx.Request(request.method, request.url),
        ) from exc


def _tls_failure(exc: BaseException) -> str:
    """What went wrong in a mutual-TLS exchange, blaming the merchant certificate only when the
    server may be what refused it."""
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


class Transmit:
    """Sends a request on the running loop's pools of ``connections``; ``identity`` is the
    merchant certificate presented by ``security=True`` requests; ``limit`` the most bytes an
    answer read into memory may decode to (``Client(max_answer_size=)``)."""

    __slots__ = ("_connections", "_identity", "_limit")

    def __init__(
        self,
        connections: Connections,
        identity: MerchantIdentity | None,
        limit: int = DEFAULT_MAX_ANSWER_SIZE,
    ) -> None:
        self._connections = connections
        self._identity = identity
        self._limit = limit

    def __call__(self, request: Request) -> Awaitable[httpx.Response]:
        pools = self._connections.current()
        if request.security:
            return _send_secure(pools.secure(self._identity), request, self._limit)
        pool = pools.plain
        if _direct(pool, request):
            return pool.send(request, self._limit)  # straight to the transport: the hot path
        return _send_full(pool, request, self._limit)
