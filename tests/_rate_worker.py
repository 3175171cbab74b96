"""A process sending as fast as a shared (Redis) rate limit lets it, for the rate tests.

    python tests/_rate_worker.py CONFIG.json

CONFIG holds the client ``options`` (PEM strings), the Redis ``url`` and ``prefix``, the
``rate`` per second, how many ``requests`` to send, ``concurrency`` and ``start_at`` (a
wall-clock time, so that every process starts together). Prints how many were sent.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import anyio

from wechatpay_chain import Client, RateLimit
from wechatpay_chain.stores import RedisRateStore

TEMPLATE = "v3/test/paced"


async def run(config: dict[str, Any]) -> int:
    store = RedisRateStore(config["url"], prefix=config["prefix"])
    limit = RateLimit({TEMPLATE: config["rate"]}, store=store)
    client = Client(**config["options"], rate_limit=limit)
    if not config.get("verify", True):
        client = client.without("verifier")  # a bare counting server: its answers are unsigned
    sent = 0
    left = config["requests"]

    async def worker() -> None:
        nonlocal sent, left
        while left > 0:
            left -= 1
            await client.chain(TEMPLATE).get()
            sent += 1

    await anyio.sleep(max(0.0, config["start_at"] - time.time()))
    async with client:
        async with anyio.create_task_group() as group:
            for _ in range(config["concurrency"]):
                group.start_soon(worker)
    return sent


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as file:
        settings = json.load(file)
    print(json.dumps(anyio.run(run, settings, backend=settings.get("backend", "asyncio"))))
