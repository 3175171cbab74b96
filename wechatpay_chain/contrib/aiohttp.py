"""aiohttp integration (``pip install wechatpay-chain[aiohttp]``).

    from aiohttp import web
    from wechatpay_chain.contrib.aiohttp import notification_handler

    async def on_notification(request: web.Request, notification: Notification) -> None:
        ...                          # raise to have WeChat Pay re-send it later

    app = web.Application()
    app.router.add_post("/wechatpay/notify", notification_handler(client, on_notification))

The wrapper reads the raw body, verifies and decrypts it, runs the handler with the typed
notification and answers exactly what WeChat Pay expects: an acknowledgement, a 4xx for a
notification that does not verify (the handler never sees it), or, for a re-sent copy of one
already handled, an acknowledgement without running the handler again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web

from ..notifications import Deduplicator, Kind

if TYPE_CHECKING:
    from .._client import Client

__all__ = ["notification_handler"]

Handler = Callable[[web.Request, Any], Awaitable[object]]


def notification_handler(
    client: Client,
    handler: Handler,
    *,
    kind: Kind = "v3",
    dedup: Deduplicator | Literal[False] | None = None,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp request handler that verifies, then calls ``handler(request, notification)``.

    ``kind``: ``"v3"``, ``"v2_pay"`` or ``"v2_refund"``. ``dedup``: a Deduplicator (default:
    the client's in-memory one; ``False``: none). The client is checked now, so missing keys
    fail at start-up. An exception from ``handler`` propagates: aiohttp answers 500 and
    WeChat Pay re-sends the notification later.
    """
    notifications = client.notifications
    notifications.require(kind)

    async def endpoint(request: web.Request) -> web.Response:
        body = await request.read()

        async def run(notification: Any) -> None:
            await handler(request, notification)

        answer = await notifications.handle(request.headers, body, run, kind=kind, dedup=dedup)
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)

    return endpoint
