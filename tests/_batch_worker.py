"""A coupon batch in its own process, for the crash test (and by hand).

    python tests/_batch_worker.py CONFIG.json

CONFIG holds the fake server's ``base_url``, the merchant's ``mchid``/``serial``/
``private_key`` (PEM), the platform ``certs``, the ``journal`` path, ``items`` and
``concurrency``. It sends one coupon to each of the openids ``o-00000``, ``o-00001``... with
``client.batch`` and prints the summary as one JSON line on stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import anyio
import httpx

from wechatpay_chain import BatchCall, Client

TEMPLATE = "v3/marketing/favor/users/{openid}/coupons"


def openids(count: int) -> Iterator[str]:
    return (f"o-{i:05d}" for i in range(count))


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

    async with client:
        summary = await client.batch(
            send,
            openids(config["items"]),
            journal=config["journal"],
            concurrency=config["concurrency"],
            total=config["items"],
        )
    return {
        name: getattr(summary, name)
        for name in (
            "total",
            "sent",
            "succeeded",
            "failed",
            "skipped",
            "resent",
            "duplicates",
            "unresolved",
            "elapsed",
        )
    }


def main(path: str) -> None:
    with open(path, encoding="utf-8") as file:
        config = json.load(file)
    print(json.dumps(anyio.run(run, config)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
