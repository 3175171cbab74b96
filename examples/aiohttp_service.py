"""An aiohttp service: Native payments (a QR code URL) and their notifications.

    POST /orders                    {"out_trade_no", "amount", "description"} -> {"code_url"}
    POST /wechatpay/notify          APIv3 payment notifications
    POST /wechatpay/notify/v2       APIv2 payment notifications (older integrations)
    GET  /orders/{out_trade_no}     the order's state

Run it: ``python aiohttp_service.py 8080`` with the settings of ``settings.py`` in the
environment (``WECHATPAY_SECRET`` too, for the APIv2 endpoint) and ``WECHATPAY_APPID``.
"""

from __future__ import annotations

import os
import sys

from aiohttp import web

from wechatpay_chain import APIError, Client
from wechatpay_chain.contrib.aiohttp import notification_handler
from wechatpay_chain.notifications import Notification, V2PayNotification


def create_app(client: Client, appid: str, notify_url: str) -> web.Application:
    mchid = client.config.mchid
    if mchid is None:
        raise ValueError("the client has no mchid: APIv3 payments need one")
    orders: dict[str, str] = {}

    async def create_order(request: web.Request) -> web.Response:
        order = await request.json()
        try:
            resp = await client.v3.pay.transactions.native.post(json={
                "appid": appid,
                "mchid": mchid,
                "description": order["description"],
                "out_trade_no": order["out_trade_no"],
                "notify_url": notify_url,
                "amount": {"total": order["amount"], "currency": "CNY"},
            })
        except APIError as exc:
            return web.json_response({"error": exc.code}, status=502)
        orders[order["out_trade_no"]] = "created"
        return web.json_response({"code_url": resp.json()["code_url"]})

    async def paid(request: web.Request, n: Notification) -> None:
        if n.event_type == "TRANSACTION.SUCCESS":
            orders[n.resource["out_trade_no"]] = "paid"

    async def paid_v2(request: web.Request, n: V2PayNotification) -> None:
        orders[n.fields["out_trade_no"]] = "paid"

    async def state(request: web.Request) -> web.Response:
        out_trade_no = request.match_info["out_trade_no"]
        if out_trade_no not in orders:
            raise web.HTTPNotFound()
        return web.json_response({"state": orders[out_trade_no]})

    app = web.Application()
    app.router.add_post("/orders", create_order)
    app.router.add_get("/orders/{out_trade_no}", state)
    app.router.add_post("/wechatpay/notify", notification_handler(client, paid))
    app.router.add_post(
        "/wechatpay/notify/v2", notification_handler(client, paid_v2, kind="v2_pay")
    )

    async def close_client(app: web.Application) -> None:
        await client.aclose()

    app.on_cleanup.append(close_client)
    return app


def main(argv: list[str]) -> None:
    from settings import client_from_env

    port = int(argv[1]) if len(argv) > 1 else 8080
    app = create_app(client_from_env(), os.environ["WECHATPAY_APPID"],
                     os.environ.get("NOTIFY_URL", f"https://example.com:{port}/wechatpay/notify"))
    web.run_app(app, port=port)


if __name__ == "__main__":
    main(sys.argv)
