"""Stress: sync calls from many threads, several asyncio.run and trio.run loops on one client,
random cancellations, certificate rotation under auto_refresh, notifications re-sent
concurrently, and close() at a random point. Bounded (well under a minute); nothing here
asserts a duration: it asserts that nothing hangs, nothing is handled twice, nothing leaks,
and every answer reached the one caller whose request it was."""

from __future__ import annotations

import asyncio
import gc
import os
import random
import threading
import time
from collections import Counter
from typing import Any

import anyio
import httpx
import pytest
import trio

from wechatpay_chain import Client, ClientClosedError, WechatpayError
from wechatpay_chain.testing import FakeWechatPay, _notify
from wechatpay_chain.transport.parallel import signing_threads

COUPONS = "v3/marketing/favor/users/{openid}/coupons"
#: Typed errors a call may end in here: closed under it, a verification or API failure
#: (mid-rotation), a transport error (the pool closed under it).
TYPED = (ClientClosedError, WechatpayError, httpx.HTTPError)
#: How long any one call may take before the test calls it a hang.
BOUND = 30.0


def _cancellation(error: BaseException) -> bool:
    """The caller's own cancellation (trio may wrap it in a group from a nursery below)."""
    cancelled = (TimeoutError, asyncio.TimeoutError, asyncio.CancelledError, trio.Cancelled)
    split = getattr(error, "split", None)  # a BaseExceptionGroup
    if split is not None:
        return bool(split(cancelled)[1] is None)
    return isinstance(error, cancelled)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts fds through /proc")
@pytest.mark.parametrize("seed", [1, 2])
def test_threads_loops_cancellation_rotation_and_close(seed: int) -> None:
    rng = random.Random(seed)
    with FakeWechatPay() as server:
        mchid = server.merchant.mchid
        signers = signing_threads()  # process-wide, started once: not a per-client thread
        if signers is not None:
            signers._start()
        gc.collect()
        threads_before, fds_before = threading.active_count(), _fds()
        client: Client = server.client()
        lock = threading.Lock()
        answers: list[tuple[str, str]] = []  # (out_request_no, coupon_id) each caller got
        outcomes: Counter[str] = Counter()
        untyped: list[BaseException] = []
        handled: Counter[str] = Counter()
        stop = threading.Event()
        counter = iter(range(10**9))

        def next_no() -> str:
            with lock:
                return f"S{seed}-{next(counter)}"

        def body(no: str) -> dict[str, str]:
            return {"stock_id": "1", "out_request_no": no, "appid": "wx1",
                    "stock_creator_mchid": mchid}

        def settle(no: str, result: Any) -> None:
            with lock:
                if isinstance(result, httpx.Response):
                    assert result.status_code == 200
                    answers.append((no, result.json()["coupon_id"]))
                    outcomes["answered"] += 1
                elif isinstance(result, TYPED):
                    outcomes[type(result).__name__] += 1
                elif _cancellation(result):
                    outcomes["cancelled by its caller"] += 1
                else:
                    untyped.append(result)

        # --- the workers ---------------------------------------------------------------
        def sync_worker() -> None:
            while not stop.is_set():
                no = next_no()
                try:
                    result: Any = client[COUPONS].post_sync(openid="o-1", json=body(no))
                except BaseException as exc:
                    result = exc
                settle(no, result)
                if isinstance(result, ClientClosedError):
                    return

        async def one_async(no: str) -> None:
            try:
                result: Any = await client[COUPONS].post(openid="o-1", json=body(no))
            except BaseException as exc:
                settle(no, exc)
                raise
            settle(no, result)

        def asyncio_worker() -> None:
            async def main() -> None:
                while not stop.is_set():
                    calls = [one_async(next_no()) for _ in range(4)]
                    tasks = [asyncio.ensure_future(c) for c in calls]
                    if rng.random() < 0.5:
                        await asyncio.sleep(rng.random() * 0.02)
                        rng.choice(tasks).cancel()
                    done = await asyncio.gather(*tasks, return_exceptions=True)
                    if any(isinstance(d, ClientClosedError) for d in done):
                        return

            for _ in range(3):  # a fresh loop each time, on the same client
                asyncio.run(main())
                if stop.is_set():
                    return

        def trio_worker() -> None:
            async def main() -> None:
                while not stop.is_set():
                    with trio.move_on_after(rng.random() * 0.05):
                        try:
                            await one_async(next_no())
                        except ClientClosedError:
                            return
                        except TYPED:
                            pass

            for _ in range(3):
                trio.run(main)
                if stop.is_set():
                    return

        def notifier() -> None:
            # The same notifications arrive concurrently on several loops: each runs once.
            async def handler(notification: Any) -> None:
                with lock:
                    handled[notification.id] += 1
                await anyio.sleep(0.01)

            async def main(copies: list[tuple[Any, bytes]]) -> None:
                async with anyio.create_task_group() as group:
                    for headers, raw in copies:
                        group.start_soon(deliver, headers, raw)

            async def deliver(headers: Any, raw: bytes) -> None:
                try:
                    await client.notifications.handle(headers, raw, handler)
                except TYPED:
                    pass

            while not stop.is_set():
                ident = f"EV-{seed}-{next_no()}"
                built = _notify.build_notification(server, "TRANSACTION.SUCCESS", {}, id=ident)
                copies = [built] * 3
                runners = [
                    threading.Thread(target=anyio.run, args=(main, copies), kwargs={"backend": b})
                    for b in ("asyncio", "trio")
                ]
                for runner in runners:
                    runner.start()
                for runner in runners:
                    runner.join(BOUND)
                    assert not runner.is_alive()

        def rotator() -> None:
            while not stop.wait(rng.uniform(0.3, 0.8)):
                server.rotate_certificate()

        workers = (
            [threading.Thread(target=sync_worker, name=f"sync-{i}") for i in range(6)]
            + [threading.Thread(target=asyncio_worker, name=f"asyncio-{i}") for i in range(2)]
            + [threading.Thread(target=trio_worker, name=f"trio-{i}") for i in range(2)]
            + [threading.Thread(target=notifier, name="notifier"),
               threading.Thread(target=rotator, name="rotator")]
        )
        for worker in workers:
            worker.daemon = True
        with client.certificates.auto_refresh(min_interval=0.05):
            for worker in workers:
                worker.start()
            time.sleep(rng.uniform(1.5, 3.0))
            closer = threading.Thread(target=client.close, name="closer", daemon=True)
            closer.start()  # close at a random point, from another thread, mid-traffic
            time.sleep(rng.uniform(0.0, 0.5))
            stop.set()
            closer.join(BOUND)
            assert not closer.is_alive(), "close() hung"
            for worker in workers:
                worker.join(BOUND)
            hung = [w.name for w in workers if w.is_alive()]
            assert not hung, f"hung: {hung}"

        # After close(), every path raises the typed error.
        with pytest.raises(ClientClosedError):
            client[COUPONS].post_sync(openid="o-1", json=body(next_no()))
        with pytest.raises(ClientClosedError):
            asyncio.run(one_async(next_no()))

        assert not untyped, untyped[:3]
        assert outcomes["answered"] > 0 and outcomes["ClientClosedError"] > 0, outcomes
        assert handled and max(handled.values()) == 1, "a notification was handled twice"
        # Every answer went to the caller whose request it was: the coupon each caller got
        # is the one the server issued for that caller's out_request_no, and no two callers
        # got the same one.
        issued = server.state.get("sent_by_request_no", {})
        for no, coupon_id in answers:
            assert issued[f"{mchid}/{no}"] == coupon_id
        assert len({c for _, c in answers}) == len(answers)

        gc.collect()
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline and (
            threading.active_count() > threads_before or _fds() > fds_before + 2
        ):
            time.sleep(0.05)
        names = [t.name for t in threading.enumerate()]
        assert threading.active_count() <= threads_before, names
        assert _fds() <= fds_before + 2
