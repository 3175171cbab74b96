"""Lifecycle rules (DESIGN.md §7, README "Lifecycle"): close() with calls in flight, calls
after close, dropped clients, sync verbs inside event loops, many loops and threads on one
client, cancelled refreshes, bounded mutual-TLS pools. Real threads, loops and sockets."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
import trio

from wechatpay_chain import (
    Client,
    ClientClosedError,
    InvalidArgumentError,
    VerificationError,
    WechatpayError,
)
from wechatpay_chain.middlewares import Request
from wechatpay_chain.middlewares.pipeline import Handler
from wechatpay_chain.testing import FakeWechatPay, Merchant
from wechatpay_chain.testing._fake import private_pem
from wechatpay_chain.transport import registry

COUPONS = "v3/marketing/favor/users/{openid}/coupons"


def coupon(server: FakeWechatPay, no: str) -> dict[str, str]:
    return {
        "stock_id": "1",
        "out_request_no": no,
        "appid": "wx1",
        "stock_creator_mchid": server.merchant.mchid,
    }


def in_thread(target: Callable[[], Any], bound: float = 30.0) -> Any:
    """Run ``target`` in a daemon thread; fail (not hang) if it takes longer than ``bound``."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(("ok", target()))
        except BaseException as exc:
            outcome.append(("error", exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(bound)
    assert not thread.is_alive(), f"still blocked after {bound} s: a hang"
    kind, value = outcome[0]
    if kind == "error":
        raise value
    return value


def stall(entered: threading.Event) -> Callable[[Request, Handler], Any]:
    """A middleware that waits (as a retry backoff, a rate limiter or a KMS call does)."""

    async def middleware(request: Request, call_next: Handler) -> httpx.Response:
        entered.set()
        await anyio.sleep(3600)
        return await call_next(request)

    return middleware


# --- close() ---------------------------------------------------------------------------------


def test_close_fails_sync_calls_in_flight_promptly(wechatpay_server: FakeWechatPay) -> None:
    client = wechatpay_server.client()
    entered = threading.Event()
    stalled = client.insert("stall", stall(entered), after="template")
    outcomes: list[Any] = []

    def call() -> None:
        try:
            stalled[COUPONS].get_sync(openid="o-1", query={"appid": "wx1"})
            outcomes.append("answered")
        except BaseException as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=call, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    assert entered.wait(10)
    time.sleep(0.1)  # all four waiting in the middleware
    client.close()
    for thread in threads:
        thread.join(30)
    assert not any(t.is_alive() for t in threads), "a *_sync caller was stranded by close()"
    assert len(outcomes) == 4
    assert all(isinstance(o, ClientClosedError) for o in outcomes), outcomes
    assert "in flight" in str(outcomes[0])


def test_calls_after_close_raise_on_every_path(wechatpay_server: FakeWechatPay) -> None:
    client = wechatpay_server.client()
    node = client[COUPONS]
    assert node.get_sync(openid="o-1", query={"appid": "wx1"}).status_code == 200

    async def call() -> int:
        return (await node.get(openid="o-1", query={"appid": "wx1"})).status_code

    assert asyncio.run(call()) == 200
    client.close()
    sent = len(wechatpay_server.requests)
    with pytest.raises(ClientClosedError):
        node.get_sync(openid="o-1", query={"appid": "wx1"})
    with pytest.raises(ClientClosedError):
        asyncio.run(call())
    with pytest.raises(ClientClosedError):
        trio.run(call)
    with pytest.raises(RuntimeError):  # as httpx raises on a closed client
        client.without("verifier")[COUPONS].get_sync(openid="o-1", query={"appid": "wx1"})
    assert len(wechatpay_server.requests) == sent


@pytest.mark.anyio
async def test_aclose_closes_the_client_for_later_calls(wechatpay_server: FakeWechatPay) -> None:
    client = wechatpay_server.client()
    assert (await client[COUPONS].get(openid="o-1", query={"appid": "wx1"})).status_code == 200
    await client.aclose()
    with pytest.raises(ClientClosedError):
        await client[COUPONS].get(openid="o-1", query={"appid": "wx1"})


# --- dropped clients -------------------------------------------------------------------------


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts fds through /proc")
def test_dropped_clients_release_their_thread_loop_and_sockets(
    wechatpay_server: FakeWechatPay,
) -> None:
    def use_one() -> None:
        client = wechatpay_server.client()
        assert client[COUPONS].get_sync(openid="o-1", query={"appid": "wx1"}).status_code == 200

    use_one()  # warm-up: process-wide threads and caches
    gc.collect()
    time.sleep(0.2)
    threads, fds = threading.active_count(), _open_fds()
    for _ in range(30):
        use_one()
    gc.collect()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (
        threading.active_count() > threads or _open_fds() > fds + 2
    ):
        time.sleep(0.05)
        gc.collect()
    names = [t.name for t in threading.enumerate()]
    assert threading.active_count() <= threads, names
    assert _open_fds() <= fds + 2


# --- *_sync inside an event loop -------------------------------------------------------------


def test_sync_call_in_a_loop_that_holds_the_refresh_raises_instead_of_deadlocking(
    wechatpay_server: FakeWechatPay,
) -> None:
    client = wechatpay_server.client()

    async def main() -> None:
        async with client.certificates.auto_refresh():
            wechatpay_server.rotate_certificate()
            wechatpay_server.misbehave("slow", template="v3/certificates", delay=2.0)
            holder = asyncio.create_task(client.certificates.refresh())
            await asyncio.sleep(0.3)  # it holds the refresh, waiting for the slow download
            # This blocks the loop `holder` runs on; its answer is signed by the new
            # certificate, so it needs the refresh `holder` can only finish once unblocked.
            with pytest.raises(WechatpayError, match="blocks it"):
                client[COUPONS].get_sync(openid="o-1", query={"appid": "wx1"})
            await holder
            # and afterwards the same call just works
            assert client[COUPONS].get_sync(openid="o-1", query={"appid": "wx1"}).status_code == 200

    in_thread(lambda: asyncio.run(main()))
    client.close()


def test_sync_call_from_trio_code_works(wechatpay_server: FakeWechatPay) -> None:
    client = wechatpay_server.client()

    async def main() -> int:
        return client[COUPONS].get_sync(openid="o-1", query={"appid": "wx1"}).status_code

    assert in_thread(lambda: trio.run(main)) == 200
    client.close()


# --- certificate refresh cancelled while another loop downloads --------------------------------


def test_cancelled_refresh_wait_leaves_no_lock_held(wechatpay_server: FakeWechatPay) -> None:
    client = wechatpay_server.client()
    downloading = threading.Event()

    async def download_slowly() -> None:
        wechatpay_server.misbehave("slow", template="v3/certificates", delay=1.5)
        task = asyncio.ensure_future(client.certificates.refresh())
        await asyncio.sleep(0.2)
        downloading.set()
        await task

    async def cancelled_waiter() -> None:
        assert downloading.wait(10)
        with trio.move_on_after(0.3) as scope:
            await client.certificates.refresh()
        assert scope.cancelled_caught

    async def later() -> int:
        return len(await client.certificates.refresh())

    with client.certificates.auto_refresh():
        first = threading.Thread(target=lambda: asyncio.run(download_slowly()), daemon=True)
        first.start()
        in_thread(lambda: trio.run(cancelled_waiter))
        first.join(20)
        assert not first.is_alive()
        assert in_thread(lambda: asyncio.run(asyncio.wait_for(later(), 10))) >= 1
        assert in_thread(lambda: trio.run(later), bound=15) >= 1
    client.close()


# --- many loops and threads on one client -----------------------------------------------------


def test_threads_each_running_asyncio_run_share_one_client(
    wechatpay_server: FakeWechatPay,
) -> None:
    client = wechatpay_server.client()
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        start.wait()
        for i in range(8):
            async def call(no: str = f"{n}-{i}") -> int:
                response = await client[COUPONS].post(
                    openid="o-1", json=coupon(wechatpay_server, no)
                )
                return response.status_code

            try:
                assert asyncio.run(call()) == 200
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors[:3]
    assert not any(t.is_alive() for t in threads)
    assert client._connections.loops() == 0  # every loop's entry went with its loop
    client.close()


# --- body= and headers= ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_bytes_like_and_chunked_bodies_are_signed_as_sent(
    wechatpay_server: FakeWechatPay,
) -> None:
    client = wechatpay_server.client()
    data = b'{"stock_id":"1","out_request_no":"b","appid":"wx1","stock_creator_mchid":"%s"}' % (
        wechatpay_server.merchant.mchid.encode()
    )
    half = len(data) // 2
    chunks = (data[:half], data[half:])
    for body in (bytearray(data), memoryview(data), list(chunks), chunks, iter(chunks)):
        response = await client[COUPONS].post(
            openid="o-1", body=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 200
        assert wechatpay_server.requests[-1].body == data
    await client.aclose()


@pytest.mark.anyio
async def test_unsignable_bodies_are_refused_before_sending(
    wechatpay_server: FakeWechatPay,
) -> None:
    client = wechatpay_server.client()

    async def stream() -> Any:
        yield b"{}"

    sent = len(wechatpay_server.requests)
    with pytest.raises(InvalidArgumentError, match="bytes or str"):
        await client[COUPONS].post(openid="o-1", body=stream())
    with pytest.raises(InvalidArgumentError, match="chunks must be bytes"):
        await client[COUPONS].post(openid="o-1", body=["{}"])
    with pytest.raises(InvalidArgumentError, match="body="):
        await client[COUPONS].post(openid="o-1", body=object())
    # the KMS signer path refuses it the same way
    kms = client.with_signer(lambda message: "c2lnbmF0dXJl")
    with pytest.raises(InvalidArgumentError, match="stream"):
        await kms[COUPONS].post(openid="o-1", body=stream())
    assert len(wechatpay_server.requests) == sent
    await client.aclose()


@pytest.mark.anyio
async def test_user_header_names_merge_case_insensitively(
    wechatpay_server: FakeWechatPay,
) -> None:
    client = wechatpay_server.client()
    seen: list[list[tuple[bytes, bytes]]] = []

    async def spy(request: Request, call_next: Handler) -> httpx.Response:
        response = await call_next(request)
        assert response.request is not None
        seen.append(list(response.request.headers.raw))
        return response

    spied = client.insert("spy", spy, after="signer")
    response = await spied[COUPONS].post(
        openid="o-1",
        json=coupon(wechatpay_server, "h"),
        headers={
            "accept": "application/json",
            "authorization": "forged",
            "content-type": "application/json",
        },
    )
    assert response.status_code == 200  # the signed Authorization went, not the forged one
    names = [name.lower() for name, _ in seen[-1]]
    for name in (b"accept", b"authorization", b"content-type"):
        assert names.count(name) == 1, seen[-1]
    raw = dict(seen[-1])
    assert b"accept" in raw and b"Accept" not in raw  # the caller's spelling replaced ours
    assert raw[b"authorization"].startswith(b"WECHATPAY2-SHA256-RSA2048 ")
    await client.aclose()


# --- mutual TLS pools for many merchant clients -----------------------------------------------


def _merchant_client(root: Client, server: FakeWechatPay, merchant: Merchant) -> Client:
    assert server.ca is not None
    key = private_pem(merchant.private_key)
    return root.for_merchant(
        mchid=merchant.mchid,
        serial=merchant.serial,
        private_key=key,
        certs=server.certs(),
        secret=merchant.secret,
        merchant_cert=server.ca.client_pem(merchant.mchid, merchant.private_key),
        merchant_key=key,
    )


SEND = "v2/mmpaymkttransfers/send_coupon"


def _send_coupon(client: Client, mchid: str) -> Any:
    return client[SEND].post(
        security=True,
        xml={
            "coupon_stock_id": "1717",
            "openid_count": 1,
            "partner_trade_no": f"{mchid}20260101",
            "openid": "o-1",
            "appid": "wxd678efh567hg6787",
            "mch_id": mchid,
        },
    )


def test_many_merchant_clients_with_one_certificate_share_one_pool(
    wechatpay_tls_server: FakeWechatPay, wechatpay_tls_client: Client
) -> None:
    server = wechatpay_tls_server
    assert server.ca is not None
    root = wechatpay_tls_client
    mchid = server.merchant.mchid
    cert = server.ca.client_pem(mchid, server.merchant.private_key)
    key = private_pem(server.merchant.private_key)
    derived = [
        root.for_merchant(
            mchid=mchid,
            serial=server.merchant.serial,
            private_key=key,
            certs=server.certs(),
            secret=server.merchant.secret,
            merchant_cert=cert,
            merchant_key=key,
        )
        for _ in range(100)
    ]

    async def main() -> int:
        for client in derived:
            answer = await _send_coupon(client, mchid)
            assert b"<return_code><![CDATA[SUCCESS]]>" in answer.content
        (pools,) = root._connections._pools.values()
        return len(pools._secure)

    assert asyncio.run(main()) == 1
    assert len(root._connections.factory._ssl_contexts) == 1


def test_secure_pools_per_loop_are_bounded_and_evicted_ones_closed(
    wechatpay_tls_server: FakeWechatPay,
    wechatpay_tls_client: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry, "SECURE_POOLS", 2)
    server = wechatpay_tls_server
    merchants = [Merchant.generate(f"19000001{n:02d}") for n in range(3)]
    for merchant in merchants:
        server.merchants[merchant.mchid] = merchant
    clients = [_merchant_client(wechatpay_tls_client, server, m) for m in merchants]
    try:
        async def main() -> tuple[int, bool]:
            pools = []
            for client, merchant in zip(clients, merchants, strict=True):
                answer = await _send_coupon(client, merchant.mchid)
                assert b"<return_code><![CDATA[SUCCESS]]>" in answer.content
                (loop_pools,) = wechatpay_tls_client._connections._pools.values()
                pools.append(loop_pools._secure[client.config.merchant_identity])
            await asyncio.sleep(0.1)  # the evicted pool closes in the background
            (loop_pools,) = wechatpay_tls_client._connections._pools.values()
            return len(loop_pools._secure), pools[0].http.is_closed

        assert asyncio.run(main()) == (2, True)
    finally:
        for merchant in merchants:
            del server.merchants[merchant.mchid]


# --- also looked into -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_streamed_answer_signed_by_a_not_yet_valid_certificate_is_rejected(
    wechatpay_server: FakeWechatPay, tmp_path: Any
) -> None:
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    future = wechatpay_server.platform_certificates.issue(
        not_before=now + timedelta(days=1), not_after=now + timedelta(days=400), publish=False
    )
    current = wechatpay_server.certificate_signer
    wechatpay_server.certificate_signer = future
    wechatpay_server.mode = "certificate"
    client = wechatpay_server.client(certs={future.serial: future.public})
    try:
        with pytest.raises(VerificationError, match="not valid before"):
            await client[COUPONS].get(openid="o-1", query={"appid": "wx1"})
        with pytest.raises(VerificationError, match="not valid before"):
            await client[COUPONS].get(openid="o-1", query={"appid": "wx1"}, sink=tmp_path / "a")
    finally:
        wechatpay_server.certificate_signer = current  # the server is shared by the session
        await client.aclose()


def test_concurrent_platform_key_additions_are_all_kept(wechatpay_server: FakeWechatPay) -> None:
    from wechatpay_chain.crypto.platform import PlatformKeys, load_platform_key

    certs = [
        wechatpay_server.platform_certificates.issue(publish=False) for _ in range(16)
    ]
    entries = [load_platform_key(c.serial, c.public) for c in certs]
    keys = PlatformKeys()
    start = threading.Barrier(16)

    def add(entry: Any) -> None:
        start.wait()
        for _ in range(200):
            keys.add(entry)

    threads = [threading.Thread(target=add, args=(e,)) for e in entries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(keys) == {c.serial for c in certs}


def test_a_hung_handler_does_not_refuse_re_sent_copies_forever() -> None:
    from wechatpay_chain.notifications import MemoryDeduplicator

    store = MemoryDeduplicator(claim_timeout=0.2)

    async def main() -> list[str]:
        first = await store.claim("k")
        again = await store.claim("k")
        await anyio.sleep(0.3)  # the first handler hangs past the claim's lifetime
        later = await store.claim("k")
        await store.finish("k", handled=True)
        return [first, again, later, await store.claim("k")]

    assert anyio.run(main) == ["new", "in_progress", "new", "done"]
    with pytest.raises(InvalidArgumentError):
        MemoryDeduplicator(claim_timeout=0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_nonces_work_in_a_child_forked_while_another_thread_held_their_lock() -> None:
    from wechatpay_chain.protocol import formatter

    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with formatter._ENTROPY._lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(5)
    pid = os.fork()
    if pid == 0:  # the child: nobody will ever release the inherited lock
        try:
            ok = len(formatter.Formatter.nonce(32)) == 32
        finally:
            os._exit(0 if ok else 1)
    release.set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung on the nonce lock")
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sync_calls_work_in_a_forked_child(wechatpay_server: FakeWechatPay) -> None:
    client = wechatpay_server.client()
    node = client[COUPONS]
    assert node.get_sync(openid="o-1", query={"appid": "wx1"}).status_code == 200
    pid = os.fork()
    if pid == 0:  # the child: the parent's sync thread does not exist here
        code = 1
        try:
            signal_alarm = __import__("signal")
            signal_alarm.alarm(20)  # a hang ends the child instead of the test
            ok = node.get_sync(openid="o-1", query={"appid": "wx1"}).status_code == 200
            client.close()
            code = 0 if ok else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # the parent's own bridge is untouched by the child
    assert node.get_sync(openid="o-1", query={"appid": "wx1"}).status_code == 200
    client.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_refresh_running_in_the_parent_does_not_block_the_forked_child(
    wechatpay_server: FakeWechatPay,
) -> None:
    client = wechatpay_server.client()
    with client.certificates.auto_refresh():
        wechatpay_server.misbehave("slow", template="v3/certificates", delay=2.0)
        parent = threading.Thread(target=client.certificates.refresh_sync, daemon=True)
        parent.start()
        time.sleep(0.5)  # the parent's download holds the refresh lock now
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                __import__("signal").alarm(20)  # a hang ends the child instead of the test
                code = 0 if client.certificates.refresh_sync() else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        parent.join(20)
        assert os.waitstatus_to_exitcode(status) == 0
    client.close()


def test_per_loop_state_goes_with_each_asyncio_run_and_trio_run(
    wechatpay_server: FakeWechatPay,
) -> None:
    from wechatpay_chain import RateLimit

    limiter = RateLimit(concurrency=4)
    client = wechatpay_server.client(rate_limit=limiter)

    async def main() -> int:
        async with client.certificates.auto_refresh():
            await client.certificates.refresh()
        return (await client[COUPONS].get(openid="o-1", query={"appid": "wx1"})).status_code

    for _ in range(3):
        assert asyncio.run(main()) == 200
        assert trio.run(main) == 200
    gc.collect()
    assert client._connections.loops() == 0
    # Six loops ran; at most the last asyncio loop and the last trio run are still referenced
    # (by one-slot caches), however many ran before them.
    assert len(limiter._semaphores) <= 2
    client.close()
