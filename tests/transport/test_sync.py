"""The *_sync verbs: plain scripts, threads, inside a running loop, never a deadlock."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from wechatpay_chain import APIError, Client, ClientClosedError, VerificationError
from wechatpay_chain.middlewares import Request
from wechatpay_chain.middlewares.pipeline import Handler
from wechatpay_chain.testing import FakeWechatPay

TEMPLATE = "v3/marketing/favor/users/{openid}/coupons"


def body(server: FakeWechatPay, no: str) -> dict[str, str]:
    return {
        "stock_id": "1",
        "out_request_no": no,
        "appid": "wx1",
        "stock_creator_mchid": server.merchant.mchid,
    }


def test_sync_calls_reuse_one_connection(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    for i in range(5):
        resp = wechatpay_client[TEMPLATE].post_sync(
            openid="o-1", json=body(wechatpay_server, str(i))
        )
        assert resp.status_code == 200
    assert wechatpay_server.connections == 1
    assert len(wechatpay_server.requests) == 5


def test_sync_calls_from_many_threads(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    node = wechatpay_client.v3.marketing.favor.users._openid_.coupons

    def send(i: int) -> str:
        return str(
            node.post_sync(openid=f"o-{i % 7}", json=body(wechatpay_server, str(i))).json()[
                "coupon_id"
            ]
        )

    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = list(pool.map(send, range(64)))
    assert len(set(ids)) == 64
    assert len(wechatpay_server.requests) == 64


def test_sync_errors_propagate(wechatpay_server: FakeWechatPay, wechatpay_client: Client) -> None:
    wechatpay_server.misbehave("tamper_body")
    with pytest.raises(VerificationError):
        wechatpay_client[TEMPLATE].post_sync(openid="o-1", json=body(wechatpay_server, "t"))
    wechatpay_server.misbehave("status_500")
    with pytest.raises(APIError) as info:
        wechatpay_client[TEMPLATE].post_sync(openid="o-1", json=body(wechatpay_server, "u"))
    assert info.value.code == "SYSTEM_ERROR"


def test_sync_call_inside_a_running_event_loop_works(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    async def handler() -> int:
        resp = wechatpay_client[TEMPLATE].post_sync(openid="o-1", json=body(wechatpay_server, "l"))
        return resp.status_code

    assert asyncio.run(asyncio.wait_for(handler(), timeout=10)) == 200


def test_sync_call_from_a_middleware_raises_instead_of_deadlocking(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    class Reentrant:
        async def __call__(self, request: Request, call_next: Handler) -> httpx.Response:
            inner.v3.marketing.favor.users._openid_.coupons.get_sync(openid="o-1")
            return await call_next(request)

    inner = wechatpay_client
    client = wechatpay_client.insert("reentrant", Reentrant())
    done = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            client[TEMPLATE].post_sync(openid="o-1", json=body(wechatpay_server, "r"))
        except BaseException as exc:
            errors.append(exc)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(10), "deadlocked"
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
    assert "own I/O thread" in str(errors[0])


def test_async_and_sync_on_one_client(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    async def both() -> int:
        resp = await wechatpay_client[TEMPLATE].post(openid="o-1", json=body(wechatpay_server, "a"))
        return resp.status_code

    assert asyncio.run(both()) == 200
    assert asyncio.run(both()) == 200  # a second loop gets its own pool
    assert (
        wechatpay_client[TEMPLATE]
        .post_sync(openid="o-1", json=body(wechatpay_server, "s"))
        .status_code
        == 200
    )


def test_close_stops_the_bridge_thread(wechatpay_server: FakeWechatPay) -> None:
    client = wechatpay_server.client()
    client[TEMPLATE].post_sync(openid="o-1", json=body(wechatpay_server, "c"))
    bridge = client._connections.bridge.thread
    assert bridge is not None and bridge.is_alive()
    client.close()
    assert not bridge.is_alive()
    # closed for good, as an httpx client: the bridge does not silently restart
    sent = len(wechatpay_server.requests)
    with pytest.raises(ClientClosedError, match="closed"):
        client[TEMPLATE].post_sync(openid="o-1", json=body(wechatpay_server, "d"))
    assert client._connections.bridge.thread is bridge and not bridge.is_alive()
    assert len(wechatpay_server.requests) == sent
    client.close()  # closing twice is harmless


@pytest.mark.anyio
async def test_sync_call_from_inside_asyncio_or_trio_code(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    resp = wechatpay_client[TEMPLATE].post_sync(openid="o-1", json=body(wechatpay_server, "in"))
    assert resp.status_code == 200
    resp = await wechatpay_client[TEMPLATE].post(openid="o-1", json=body(wechatpay_server, "in2"))
    assert resp.status_code == 200


@pytest.mark.anyio
async def test_close_from_inside_asyncio_or_trio_code(wechatpay_server: FakeWechatPay) -> None:
    client = wechatpay_server.client()
    client[TEMPLATE].post_sync(openid="o-1", json=body(wechatpay_server, "close-in"))
    bridge = client._connections.bridge.thread
    assert bridge is not None
    client.close()
    assert not bridge.is_alive()
