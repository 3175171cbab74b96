"""One worker of a shared (PostgreSQL) coupon batch, for the multi-process tests.

    python tests/_shared_batch_worker.py CONFIG.json

CONFIG holds the fake server's ``base_url``, the merchant's ``mchid``/``serial``/``private_key``
(PEM), the platform ``certs``, the PostgreSQL ``dsn``, the ``batch`` name, the ``lease``, the
number of ``items`` (0: join without input) and ``concurrency``. It sends one coupon to each of
the openids ``o-00000``, ``o-00001``... it claims, and prints its summary as one JSON line.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
import httpx

from wechatpay_chain import BatchCall, Client
from wechatpay_chain.stores import PostgresJournal

TEMPLATE = "v3/marketing/favor/users/{openid}/coupons"


async def run(config: dict[str, Any]) -> dict[str, Any]:
    client = Client(
        mchid=config["mchid"],
        serial=config["serial"],
        private_key=config["private_key"],
        certs=config["certs"],
        base_url=config["base_url"],
    )

    async def send(call: BatchCall[str]) -> httpx.Response:
        return await call.client[TEMPLATE].post(
            openid=call.item,
            json={
                "stock_id": "9856000",
                "out_request_no": call.idempotency_key,
                "appid": "wxd678efh567hg6787",
                "stock_creator_mchid": config["mchid"],
            },
        )

    journal = PostgresJournal(config["dsn"], batch=config["batch"], lease=config["lease"])
    items = (f"o-{i:05d}" for i in range(config["items"]))
    async with client:
        summary = await client.batch(
            send, items, journal=journal, concurrency=config["concurrency"], progress=False
        )
    fields = ("total", "sent", "succeeded", "failed", "resent", "unresolved", "batch")
    return {name: getattr(summary, name) for name in fields}


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as file:
        settings = json.load(file)
    print(json.dumps(anyio.run(run, settings, backend=settings.get("backend", "asyncio"))))
