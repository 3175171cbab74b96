"""Send one coupon to each openid of a file, safely re-runnable.

    python coupon_batch.py openids.txt --stock-id 9856000 --appid wx... [--journal coupons.sqlite]

Every openid is written to the journal before it is sent, with an idempotency key used as
``out_request_no``: after a crash or a failure, run the same command again; openids already
served are skipped, the rest are re-sent with the same key, so nobody gets two coupons.
Failures go to ``failures.csv``; the exit status is 1 while any remain.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import httpx

from wechatpay_chain import BatchCall, Client, RateLimit

COUPONS = "v3/marketing/favor/users/{openid}/coupons"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("openids", type=Path, help="one openid per line")
    parser.add_argument("--stock-id", required=True)
    parser.add_argument("--appid", required=True)
    parser.add_argument("--journal", default="coupons.sqlite")
    parser.add_argument("--rate", type=float, default=100, help="requests per second")
    args = parser.parse_args(argv)

    from settings import client_from_env

    client = client_from_env(rate_limit=RateLimit({f"POST {COUPONS}": args.rate}))
    openids = [line.strip() for line in args.openids.read_text().splitlines() if line.strip()]

    def send(call: BatchCall[str, Client]) -> httpx.Response:  # runs in worker threads
        return call.client[COUPONS].post_sync(openid=call.item, json={
            "stock_id": args.stock_id,
            "appid": args.appid,
            "stock_creator_mchid": client.config.mchid,
            "out_request_no": call.idempotency_key,  # the same on every run for this openid
        })

    with client:
        summary = client.batch.run_sync(send, openids, journal=args.journal, concurrency=8)
    print(summary)
    if summary.failed:
        summary.export("failures.csv", state="failed")
        print(f"{summary.failed} failed, see failures.csv; run again to retry them")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
