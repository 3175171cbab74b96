"""The innermost handler: a finished request goes out on the running loop's pool."""

from __future__ import annotations

from collections.abc import Awaitable

import httpx

from ..crypto.identity import MerchantIdentity
from ..protocol.request import Request
from .pool import Pool
from .registry import Connections
from .sink import receive_into

__all__ = ["Transmit"]


def _direct(pool: Pool, request: Request) -> bool:
    """Whether ``request`` can skip httpx's client: a bytes body, no sink, a direct pool."""
    content = request.content
    return pool.direct and request.sink is None and (content is None or type(content) is bytes)


async def _send_full(pool: Pool, request: Request) -> httpx.Response:
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
        return await http.send(built)
    return await receive_into(http, built, request)


async def _send_secure(pool: Pool, request: Request) -> httpx.Response:
    try:
        if _direct(pool, request):
            return await pool.send(request)
        return await _send_full(pool, request)
    except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError) as exc:
        # TLS 1.3 reports a refused client certificate on the first read, as a bare error
        # or as a disconnect.
        raise type(exc)(
            f"security=True request to {httpx.URL(request.url).host} failed at the TLS "
            f"layer or the connection dropped; if it persists, check that merchant_cert is "
            f"the merchant's current API certificate ({type(exc).__name__}: {exc})",
            request=exc._request or httpx.Request(request.method, request.url),
        ) from exc


class Transmit:
    """Sends a request on the running loop's pools of ``connections``; ``identity`` is the
    merchant certificate presented by ``security=True`` requests."""

    __slots__ = ("_connections", "_identity")

    def __init__(self, connections: Connections, identity: MerchantIdentity | None) -> None:
        self._connections = connections
        self._identity = identity

    def __call__(self, request: Request) -> Awaitable[httpx.Response]:
        pools = self._connections.current()
        if request.security:
            return _send_secure(pools.secure(self._identity), request)
        pool = pools.plain
        if _direct(pool, request):
            return pool.send(request)  # straight to the transport: the hot path
        return _send_full(pool, request)
