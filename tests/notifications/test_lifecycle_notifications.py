"""Notifications under the lifecycle rules: de-duplication follows the status the handler
actually sent, is shared by derived clients, and hostile headers end in the SDK's errors."""


import secrets
from typing import Annotated, Any

import pytest
from _notify_servers import serve_asgi

from wechatpay_chain import Client, NotificationError, VerificationError
from wechatpay_chain.notifications import MemoryDeduplicator, Notification
from wechatpay_chain.testing import FakeWechatPay
from wechatpay_chain.testing._http import HTTPReply

pytestmark = pytest.mark.anyio


def new_id() -> str:
    return "EV-" + secrets.token_hex(8)


async def test_fastapi_handler_answering_500_gets_the_re_sent_copy() -> None:
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from wechatpay_chain.contrib.fastapi import WechatpayNotification, install

    fake = FakeWechatPay()
    client: Client = fake.client()
    app = FastAPI()
    install(app)
    install(app)  # twice is harmless
    verified = WechatpayNotification(client)
    runs: list[str] = []

    @app.post("/notify")
    async def notify(notification: Annotated[Notification, verified.depends()]) -> Any:
        runs.append(notification.id)
        if len(runs) == 1:  # ask WeChat Pay to re-send, without raising
            return JSONResponse({"code": "FAIL", "message": "busy"}, status_code=500)
        return verified.ack()

    ident = new_id()
    with serve_asgi(app) as url:
        first = await fake.send_notification(url + "/notify", "TRANSACTION.SUCCESS", {}, id=ident)
        second = await fake.send_notification(url + "/notify", "TRANSACTION.SUCCESS", {}, id=ident)
        third = await fake.send_notification(url + "/notify", "TRANSACTION.SUCCESS", {}, id=ident)
    assert first.status_code == 500
    assert second.status_code == third.status_code == 200
    assert runs == [ident, ident]  # the re-send ran the handler; the third was a duplicate
    assert ("v3:" + ident) in client.notifications.dedup
    client.close()


def test_derived_clients_share_the_de_duplication_store() -> None:
    fake = FakeWechatPay()
    root: Client = fake.client()
    signed = root.with_signer(lambda message: "sig")
    assert signed.notifications is root.notifications
    assert root.without("verifier").notifications.dedup is root.notifications.dedup
    store = root.notifications.dedup
    assert isinstance(store, MemoryDeduplicator)
    handled: list[str] = []
    ident = new_id()

    async def handler(notification: Any) -> None:
        handled.append(notification.id)

    from wechatpay_chain.testing import _notify

    headers, body = _notify.build_notification(fake, "TRANSACTION.SUCCESS", {}, id=ident)
    import anyio

    async def both() -> None:
        first = await root.notifications.handle(headers, body, handler)
        second = await signed.notifications.handle(headers, body, handler)
        assert first.status == second.status == 200

    anyio.run(both)
    assert handled == [ident]
    root.close()


HOSTILE = ["²", "１２３", "12 ", "-1", "+1", "1e9", "0x10", "", " ", "1" * 400, "٣", "1_000"]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_timestamp_on_a_notification_is_a_notification_error(value: str) -> None:
    fake = FakeWechatPay()
    client: Client = fake.client()
    from wechatpay_chain.testing import _notify

    headers, body = _notify.build_notification(fake, "TRANSACTION.SUCCESS", {}, id=new_id())
    hostile = {k: v for k, v in headers.items() if k.lower() != "wechatpay-timestamp"}
    hostile["Wechatpay-Timestamp"] = value
    with pytest.raises(NotificationError):
        client.notifications.parse(hostile, body)
    for name in ("Wechatpay-Nonce", "Wechatpay-Serial", "Wechatpay-Signature"):
        broken = {k: v for k, v in headers.items() if k.lower() != name.lower()}
        broken[name] = value
        with pytest.raises(NotificationError):
            client.notifications.parse(broken, body)


@pytest.mark.parametrize("value", ["²", "１２３", "", "1e9", "٣"])
def test_hostile_timestamp_on_an_answer_is_a_verification_error(value: str) -> None:
    with FakeWechatPay() as fake:
        client: Client = fake.client()

        def rewrite(request: Any) -> Any:
            body = b'{"ok":true}'
            headers: list[Any] = [
                (k, v) for k, v in fake.sign_answer(body) if k != "Wechatpay-Timestamp"
            ]
            headers += [
                ("Content-Type", "application/json"),
                (b"Wechatpay-Timestamp", value.encode()),
            ]
            return HTTPReply(200, body, headers)

        fake.route("GET", "v3/hostile", rewrite)
        with pytest.raises(VerificationError):
            client.v3.hostile.get_sync()
        client.close()
