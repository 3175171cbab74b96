"""A rate limit shared on Redis: processes pace together; an unreachable Redis falls back or
fails closed, as configured. A real Redis server (tests/_servers.py), the fake WeChat Pay."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from _paths import TESTS
from _servers import free_port

from wechatpay_chain import InvalidArgumentError, RateLimit
from wechatpay_chain.stores import RedisRateStore, StoreUnavailableError
from wechatpay_chain.testing import FakeWechatPay

pytestmark = pytest.mark.anyio

TEMPLATE = "v3/test/paced"
WORKER = TESTS / "_rate_worker.py"


def prefix() -> str:
    return f"test:rate:{secrets.token_hex(4)}:"


async def _pace_all(limits: list[RateLimit], count: int) -> float:
    """``count`` paces spread over ``limits`` at once; the seconds they took."""
    begun = time.monotonic()

    async def one(limit: RateLimit) -> None:
        await limit.pace("POST", TEMPLATE)

    async with anyio.create_task_group() as group:
        for i in range(count):
            group.start_soon(one, limits[i % len(limits)])
    return time.monotonic() - begun


async def test_limits_sharing_a_store_share_one_budget(redis_url: str) -> None:
    shared = prefix()
    stores = [RedisRateStore(redis_url, prefix=shared) for _ in range(3)]
    limits = [RateLimit({TEMPLATE: 100}, store=store) for store in stores]
    # 91 slots at 100/s: the first goes at once, the last 0.9 s later, whoever takes them.
    took = await _pace_all(limits, 91)
    assert 0.85 <= took < 5.0
    # Alone (no store), each limit would have paced its 30 in 0.3 s.
    local = [RateLimit({TEMPLATE: 100}) for _ in range(3)]
    assert await _pace_all(local, 91) < 0.6
    for store in stores:
        await store.aclose()


async def test_other_prefixes_and_endpoints_have_budgets_of_their_own(redis_url: str) -> None:
    mine, theirs = (
        RedisRateStore(redis_url, prefix=prefix()),
        RedisRateStore(redis_url, prefix=prefix()),
    )
    # Waits as Redis computes them, against its own clock: no timing of this process involved.
    assert await mine.reserve("POST x", 0.2, 0.0) == 0.0
    second = await mine.reserve("POST x", 0.2, 0.0)
    assert 0.1 < second <= 0.2  # the same budget: the next slot, one interval later
    assert await mine.reserve("GET x", 0.2, 0.0) == 0.0  # another endpoint
    assert await theirs.reserve("POST x", 0.2, 0.0) == 0.0  # another prefix
    # A burst (tolerance) lets that many go at once, then the pace applies.
    assert [await theirs.reserve("b", 0.2, 0.4) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert await theirs.reserve("b", 0.2, 0.4) > 0.1
    await mine.aclose()
    await theirs.aclose()


async def test_an_unreachable_redis_falls_back_to_the_local_pace_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = RedisRateStore(f"redis://127.0.0.1:{free_port()}/0", prefix=prefix())
    limit = RateLimit({TEMPLATE: 20}, store=store)
    with caplog.at_level(logging.WARNING, logger="wechatpay_chain.ratelimit"):
        took = await _pace_all([limit], 5)
    assert 0.18 <= took < 1.5  # still paced, by this process alone: 4 intervals of 50 ms
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1  # once, not per request


async def test_fail_closed_sends_nothing_while_redis_is_unreachable(
    wechatpay_server: FakeWechatPay,
) -> None:
    store = RedisRateStore(f"redis://127.0.0.1:{free_port()}/0", fallback="closed")
    client = wechatpay_server.client(rate_limit=RateLimit({TEMPLATE: 20}, store=store))
    wechatpay_server.route("GET", TEMPLATE, lambda request: {})
    async with client:
        with pytest.raises(StoreUnavailableError, match="unreachable"):
            await client.chain(TEMPLATE).get()
    assert [r for r in wechatpay_server.requests if r.template == TEMPLATE] == []


def test_bad_arguments_name_what_to_fix() -> None:
    with pytest.raises(InvalidArgumentError, match="fallback"):
        RedisRateStore("redis://127.0.0.1:1/0", fallback="open")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="store must be a RateStore"):
        RateLimit({TEMPLATE: 1}, store=object())  # type: ignore[arg-type]
    assert "s3cret" not in repr(RedisRateStore("redis://:s3cret@127.0.0.1:1/0"))


RATE = 500
PER_PROCESS = 750  # 4 x 750 at 500/s: six seconds


def _pem(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, dict):
        return {k: _pem(v) for k, v in value.items()}
    return value


class ArrivalServer:
    """A bare HTTP/1.1 server on loopback that answers ``{}`` and notes when each request came.

    The rate is read at the server, and this one costs a few microseconds a request, so a
    loaded machine cannot make the clients look slower than the limit lets them go.
    """

    ANSWER = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    )

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self._loop.run_until_complete(server.wait_closed())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.arrivals.append(time.monotonic())
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length" and int(value):
                        await reader.readexactly(int(value))
                writer.write(self.ANSWER)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def __enter__(self) -> ArrivalServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.mark.slow
def test_four_processes_sharing_a_limit_of_500_per_second_stay_within_ten_percent(
    wechatpay_server: FakeWechatPay, redis_url: str, tmp_path: Path
) -> None:
    # The merchant's keys from the fake server; the requests go to the counting server.
    server = ArrivalServer().__enter__()
    options = {k: _pem(v) for k, v in wechatpay_server.client_options().items()}
    options["base_url"] = f"http://127.0.0.1:{server.port}/"
    config = {
        "verify": False,
        "options": options,
        "url": redis_url,
        "prefix": prefix(),
        "rate": RATE,
        "requests": PER_PROCESS,
        "concurrency": 16,
        "start_at": time.time() + 3.0,  # after every interpreter has started
    }
    (tmp_path / "rate.json").write_text(json.dumps(config), encoding="utf-8")
    processes = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(tmp_path / "rate.json")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    try:
        for process in processes:
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0, err.decode()[-2000:]
            assert json.loads(out) == PER_PROCESS
    finally:
        server.__exit__()
    arrivals = server.arrivals
    assert len(arrivals) == 4 * PER_PROCESS
    arrivals.sort()
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    assert RATE * 0.9 <= rate <= RATE * 1.1, rate
    # No two seconds of it went faster either (a window that long absorbs the jitter of a
    # loaded machine's arrivals, not a burst over the limit).
    start = 0
    for end, at in enumerate(arrivals):
        while at - arrivals[start] > 2.0:
            start += 1
        assert end - start + 1 <= 2 * RATE * 1.1, (end - start + 1, at - arrivals[0])
