"""A FastAPI shop backend: WeChat Pay notifications in, refunds out.

    POST /wechatpay/notify            payment and refund notifications (APIv3)
    POST /orders/{out_trade_no}/refund  {"amount": fen}: asks WeChat Pay for a refund
    GET  /orders/{out_trade_no}       what the notifications said about the order

Run it with the settings of ``settings.py`` in the environment:

    uvicorn --factory fastapi_service:main --port 8000     (from this folder)

Orders live in a dict here; use your database. A handler that raises makes the endpoint
answer 5xx, and WeChat Pay sends the notification again later.
"""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations at run time.
import secrets
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Response
from pydantic import BaseModel

from wechatpay_chain import APIError, Client
from wechatpay_chain.contrib.fastapi import WechatpayNotification, install
from wechatpay_chain.notifications import Notification


class RefundRequest(BaseModel):
    amount: int  # fen
    total: int  # fen: the order's total, as WeChat Pay asks for both


def create_app(client: Client) -> FastAPI:
    app = FastAPI(title="shop")
    install(app)  # exact answer bodies for WeChat Pay
    verified = WechatpayNotification(client)
    orders: dict[str, dict[str, Any]] = {}

    @app.post("/wechatpay/notify")
    async def notify(n: Annotated[Notification, verified.depends()]) -> Response:
        order = orders.setdefault(n.resource["out_trade_no"], {})
        if n.event_type == "TRANSACTION.SUCCESS":
            order["state"] = "paid"
            order["transaction_id"] = n.resource.get("transaction_id")
        elif n.event_type.startswith("REFUND."):
            order["refund"] = n.resource.get("refund_status", n.event_type)
        return verified.ack()

    @app.get("/orders/{out_trade_no}")
    async def order(out_trade_no: str) -> dict[str, Any]:
        if out_trade_no not in orders:
            raise HTTPException(404, "no such order")
        return orders[out_trade_no]

    @app.post("/orders/{out_trade_no}/refund")
    async def refund(out_trade_no: str, body: RefundRequest) -> dict[str, Any]:
        if orders.get(out_trade_no, {}).get("state") != "paid":
            raise HTTPException(409, "order not paid")
        out_refund_no = f"R{secrets.token_hex(8)}"  # store it first in a real shop: resend safely
        try:
            resp = await client.v3.refund.domestic.refunds.post(json={
                "out_trade_no": out_trade_no,
                "out_refund_no": out_refund_no,
                "amount": {"refund": body.amount, "total": body.total, "currency": "CNY"},
            })
        except APIError as exc:  # WeChat Pay said no: tell the caller why
            raise HTTPException(502, f"{exc.code}: {exc.message}") from exc
        status = resp.json().get("status")  # typed: the documented refund answer
        orders[out_trade_no]["refund"] = status or "PROCESSING"
        return {"out_refund_no": out_refund_no, "status": status}

    return app


def main() -> FastAPI:
    """The app for ``uvicorn --factory``: the merchant comes from the environment."""
    from settings import client_from_env

    return create_app(client_from_env())
