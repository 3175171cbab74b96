"""Example FastAPI and aiohttp notify endpoints, served for real on loopback (uvicorn and
aiohttp's runner) and sent real notifications by the fake WeChat Pay over HTTP.

The apps run in their own thread on asyncio; the tests drive them from asyncio and trio.
"""

import json
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
import pytest
from _notify_servers import serve_aiohttp, serve_asgi

from wechatpay_chain import Client, InvalidArgumentError, Transformer
from wechatpay_chain.notifications import (
    Notification,
    V2PayNotification,
    V2RefundNotification,
)
from wechatpay_chain.testing import FakeWechatPay

pytestmark = pytest.mark.anyio

SUCCESS = {"code": "SUCCESS", "message": "OK"}


@dataclass
class Site:
    """A running example app: where it listens and what its handlers received."""

    framework: str
    url: str
    received: list[Any] = field(default_factory=list)

    def got(self, key: str) -> list[Any]:
        return [n for n in self.received if n.dedup_key.startswith(key)]


# --- the example apps, as a user would write them ------------------------------------------
def fastapi_app(client: Client, received: list[Any]) -> Any:
    from fastapi import FastAPI
    from fastapi.responses import Response

    from wechatpay_chain.contrib.fastapi import WechatpayNotification, install

    app = FastAPI()
    install(app)
    v3 = WechatpayNotification(client)
    pay = WechatpayNotification(client, kind="v2_pay")
    refund = WechatpayNotification(client, kind="v2_refund")

    @app.post("/notify")
    async def notify(notification: Annotated[Notification, v3.depends()]) -> Response:
        if notification.resource.get("fail"):
            raise RuntimeError("handler failed")
        received.append(notification)
        return v3.ack()

    @app.post("/v2/pay")
    async def paid(notification: Annotated[V2PayNotification, pay.depends()]) -> Response:
        if notification.fields.get("attach") == "fail":
            raise RuntimeError("handler failed")
        received.append(notification)
        return pay.ack()

    @app.post("/v2/refund")
    async def refunded(notification: Annotated[V2RefundNotification, refund.depends()]) -> Response:
        received.append(notification)
        return refund.ack()

    return app


def aiohttp_app(client: Client, received: list[Any]) -> Any:
    from aiohttp import web

    from wechatpay_chain.contrib.aiohttp import notification_handler

    async def on_notification(request: web.Request, notification: Notification) -> None:
        if notification.resource.get("fail"):
            raise RuntimeError("handler failed")
        received.append(notification)

    async def on_paid(request: web.Request, notification: V2PayNotification) -> None:
        if notification.fields.get("attach") == "fail":
            raise RuntimeError("handler failed")
        received.append(notification)

    async def on_refund(request: web.Request, notification: V2RefundNotification) -> None:
        received.append(notification)

    app = web.Application()
    app.router.add_post("/notify", notification_handler(client, on_notification))
    app.router.add_post("/v2/pay", notification_handler(client, on_paid, kind="v2_pay"))
    app.router.add_post("/v2/refund", notification_handler(client, on_refund, kind="v2_refund"))
    return app


# --- fixtures -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fake() -> FakeWechatPay:
    # It only signs and sends notifications here, so it need not listen itself.
    return FakeWechatPay()


@pytest.fixture(scope="module", params=["fastapi", "aiohttp"])
def site(request: pytest.FixtureRequest, fake: FakeWechatPay) -> Iterator[Site]:
    client: Client = fake.client()
    received: list[Any] = []
    if request.param == "fastapi":
        with serve_asgi(fastapi_app(client, received)) as url:
            yield Site("fastapi", url, received)
    else:
        with serve_aiohttp(aiohttp_app(client, received)) as url:
            yield Site("aiohttp", url, received)
    client.close()


def new_id() -> str:
    return "EV-" + secrets.token_hex(8)


def paid_resource(**extra: Any) -> dict[str, Any]:
    return {
        "out_trade_no": "T" + secrets.token_hex(6),
        "trade_state": "SUCCESS",
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
        "amount": {"total": 100, "payer_total": 100, "currency": "CNY"},
        **extra,
    }


def xml_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["Content-Type"].startswith("text/xml")
    return Transformer.to_dict(response.content)


# --- APIv3 --------------------------------------------------------------------------------
async def test_verified_notification_reaches_the_handler(fake: FakeWechatPay, site: Site) -> None:
    ident, resource = new_id(), paid_resource()
    response = await fake.send_notification(
        site.url + "/notify", "TRANSACTION.SUCCESS", resource, id=ident
    )
    assert response.status_code == 200
    assert response.json() == SUCCESS
    (notification,) = site.got("v3:" + ident)
    assert isinstance(notification, Notification)
    assert notification.event_type == "TRANSACTION.SUCCESS"
    assert notification.summary == "支付成功"
    assert notification.resource == resource


@pytest.mark.parametrize(
    ("fault", "status", "reason"),
    [
        ("tamper_body", 401, "bad_signature"),
        ("tamper_signature", 401, "bad_signature"),
        ("no_signature", 401, "bad_signature"),
        ("unknown_serial", 401, "unknown_serial"),
        ("stale_timestamp", 401, "stale"),
        ("wrong_key", 400, "bad_ciphertext"),
    ],
)
async def test_unverifiable_notification_is_answered_4xx_and_never_handled(
    fake: FakeWechatPay, site: Site, fault: str, status: int, reason: str
) -> None:
    ident = new_id()
    response = await fake.send_notification(
        site.url + "/notify", "TRANSACTION.SUCCESS", paid_resource(), id=ident, fault=fault
    )
    assert response.status_code == status
    assert response.json() == {"code": "FAIL", "message": reason}
    assert site.got("v3:" + ident) == []


async def test_replayed_notification_is_acknowledged_but_handled_once(
    fake: FakeWechatPay, site: Site
) -> None:
    ident, resource = new_id(), paid_resource()
    for _ in range(3):
        response = await fake.send_notification(
            site.url + "/notify", "TRANSACTION.SUCCESS", resource, id=ident
        )
        assert response.status_code == 200
        assert response.json() == SUCCESS
    assert len(site.got("v3:" + ident)) == 1


async def test_failed_handler_gets_the_re_sent_notification(
    fake: FakeWechatPay, site: Site
) -> None:
    ident = new_id()
    failed = await fake.send_notification(
        site.url + "/notify", "TRANSACTION.SUCCESS", paid_resource(fail=True), id=ident
    )
    assert failed.status_code == 500
    assert site.got("v3:" + ident) == []
    retried = await fake.send_notification(
        site.url + "/notify", "TRANSACTION.SUCCESS", paid_resource(), id=ident
    )
    assert retried.status_code == 200
    assert len(site.got("v3:" + ident)) == 1


def test_sync_sender_works_from_plain_code(fake: FakeWechatPay, site: Site) -> None:
    ident = new_id()
    response = fake.send_notification_sync(
        site.url + "/notify", "REFUND.SUCCESS", {"out_refund_no": "R-1"}, id=ident
    )
    assert response.status_code == 200
    (notification,) = site.got("v3:" + ident)
    assert notification.original_type == "refund"
    assert notification.resource == {"out_refund_no": "R-1"}


# --- APIv2 --------------------------------------------------------------------------------
@pytest.mark.parametrize("sign_type", ["MD5", "HMAC-SHA256"])
async def test_v2_pay_notification_is_verified_and_acknowledged_in_xml(
    fake: FakeWechatPay, site: Site, sign_type: str
) -> None:
    trade = "T" + secrets.token_hex(6)
    response = await fake.send_v2_notification(
        site.url + "/v2/pay", {"out_trade_no": trade, "total_fee": 88}, sign_type=sign_type
    )
    assert response.status_code == 200
    assert xml_of(response) == {"return_code": "SUCCESS", "return_msg": "OK"}
    (notification,) = [n for n in site.got("v2_pay:") if n.out_trade_no == trade]
    assert notification.fields["total_fee"] == "88"
    again = await fake.send_v2_notification(
        site.url + "/v2/pay",
        {"out_trade_no": trade, "transaction_id": notification.transaction_id, "total_fee": 88},
        sign_type=sign_type,
    )
    assert xml_of(again)["return_code"] == "SUCCESS"
    assert len([n for n in site.got("v2_pay:") if n.out_trade_no == trade]) == 1


@pytest.mark.parametrize("fault", ["tamper_signature", "tamper_body", "wrong_key"])
async def test_v2_notification_with_a_bad_sign_is_refused(
    fake: FakeWechatPay, site: Site, fault: str
) -> None:
    trade = "T" + secrets.token_hex(6)
    response = await fake.send_v2_notification(
        site.url + "/v2/pay", {"out_trade_no": trade, "total_fee": 1}, fault=fault
    )
    assert response.status_code == 401
    assert xml_of(response) == {"return_code": "FAIL", "return_msg": "bad_signature"}
    assert not [n for n in site.received if getattr(n, "fields", {}).get("out_trade_no") == trade]


async def test_v2_refund_req_info_round_trip(fake: FakeWechatPay, site: Site) -> None:
    refund_no = "R" + secrets.token_hex(6)
    sent = {"out_refund_no": refund_no, "refund_fee": 3960, "refund_status": "CHANGE"}
    response = await fake.send_v2_notification(site.url + "/v2/refund", sent, refund=True)
    assert xml_of(response) == {"return_code": "SUCCESS", "return_msg": "OK"}
    (notification,) = [n for n in site.got("v2_refund:") if n.out_refund_no == refund_no]
    assert notification.info["refund_fee"] == "3960"
    assert notification.refund_status == "CHANGE"
    wrong = await fake.send_v2_notification(
        site.url + "/v2/refund", {"out_refund_no": "R-wrong"}, refund=True, fault="wrong_key"
    )
    assert wrong.status_code == 400
    assert xml_of(wrong)["return_msg"] == "bad_ciphertext"
    assert not [n for n in site.got("v2_refund:") if n.out_refund_no == "R-wrong"]


# --- logging ------------------------------------------------------------------------------
async def test_no_decrypted_field_is_ever_logged(
    fake: FakeWechatPay, site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    marker = "PII" + secrets.token_hex(6)
    url = site.url
    ident = new_id()
    resource = paid_resource(payer={"openid": marker})
    for fault in (None, None, "wrong_key", "stale_timestamp"):  # handled, replayed, rejected
        await fake.send_notification(
            url + "/notify", "TRANSACTION.SUCCESS", resource, id=ident, fault=fault
        )
    await fake.send_notification(
        url + "/notify", "TRANSACTION.SUCCESS", paid_resource(fail=True, note=marker)
    )
    await fake.send_v2_notification(
        url + "/v2/refund", {"out_refund_no": marker, "refund_recv_accout": marker}, refund=True
    )
    await fake.send_v2_notification(url + "/v2/pay", {"attach": "fail", "openid": marker})
    await fake.send_v2_notification(url + "/v2/pay", {"openid": marker}, fault="tamper_body")
    assert site.got("v3:" + ident)[0].resource["payer"]["openid"] == marker  # it was decrypted
    rejections = [r for r in caplog.records if r.name == "wechatpay_chain.notifications"]
    assert any("bad_ciphertext" in r.getMessage() for r in rejections)
    assert any("stale" in r.getMessage() for r in rejections)
    assert marker not in caplog.text
    for secret in (fake.merchant.apiv3_key, fake.merchant.secret):
        assert secret not in caplog.text


# --- set-up mistakes fail early -----------------------------------------------------------
def test_integrations_check_the_client_at_start_up(fake: FakeWechatPay) -> None:
    from wechatpay_chain.contrib.aiohttp import notification_handler
    from wechatpay_chain.contrib.fastapi import WechatpayNotification

    async def handler(request: Any, notification: Any) -> None: ...

    no_key = fake.client(apiv3_key=None)
    with pytest.raises(InvalidArgumentError, match="apiv3_key"):
        WechatpayNotification(no_key)
    with pytest.raises(InvalidArgumentError, match="apiv3_key"):
        notification_handler(no_key, handler)
    no_secret = fake.client(secret=None)
    with pytest.raises(InvalidArgumentError, match="secret"):
        WechatpayNotification(no_secret, kind="v2_refund")


async def test_fastapi_v2_endpoint_without_install_fails_loudly(fake: FakeWechatPay) -> None:
    from fastapi import FastAPI

    from wechatpay_chain.contrib.fastapi import WechatpayNotification

    client: Client = fake.client()
    app = FastAPI()
    pay = WechatpayNotification(client, kind="v2_pay")
    handled: list[Any] = []

    @app.post("/v2/pay")
    async def paid(notification: Annotated[V2PayNotification, pay.depends()]) -> Any:
        handled.append(notification)
        return pay.ack()

    with serve_asgi(app) as url:
        response = await fake.send_v2_notification(url + "/v2/pay", {"total_fee": 1})
    assert response.status_code == 500  # WeChat Pay re-sends; the log says what to fix
    assert handled == []


async def test_fastapi_v3_without_install_still_answers_by_status(fake: FakeWechatPay) -> None:
    from fastapi import FastAPI

    from wechatpay_chain.contrib.fastapi import WechatpayNotification

    client: Client = fake.client()
    app = FastAPI()
    verified = WechatpayNotification(client, dedup=False)
    deduplicated = WechatpayNotification(client)
    handled: list[str] = []

    @app.post("/notify")
    async def notify(notification: Annotated[Notification, verified.depends()]) -> Any:
        handled.append(notification.id)
        return verified.ack()

    @app.post("/dedup")
    async def dedup(notification: Annotated[Notification, deduplicated.depends()]) -> Any:
        handled.append(notification.id)
        return deduplicated.ack()

    with serve_asgi(app) as url:
        bad = await fake.send_notification(url + "/notify", "X.Y", {}, fault="tamper_body")
        ident = new_id()
        first = await fake.send_notification(url + "/notify", "X.Y", {}, id=ident)
        again = await fake.send_notification(url + "/notify", "X.Y", {}, id=ident)
        # De-duplication cannot see the handler's status without install(): it refuses
        # (500, so WeChat Pay re-sends) rather than risk recording a failure as handled.
        refused = await fake.send_notification(url + "/dedup", "X.Y", {}, id=new_id())
    assert bad.status_code == 401
    assert json.loads(bad.content) == {"detail": {"code": "FAIL", "message": "bad_signature"}}
    assert first.status_code == again.status_code == 200
    assert refused.status_code == 500
    assert handled == [ident, ident]
    client.close()
