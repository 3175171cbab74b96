"""Reconcile a day's WeChat Pay trade bill with your own orders.

    python reconcile_bills.py 2024-01-31 orders.csv

``orders.csv`` has the columns ``out_trade_no,amount`` (yuan, as the bill writes it) for the
orders your system saw paid that day. The bill is downloaded (its SHA1 checked while it
streams, gunzipped), read record by record, and compared; every difference is printed and
the exit status is 1 when there is any.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from decimal import Decimal
from pathlib import Path

from wechatpay_chain import Client, read_bill


async def paid_in_bill(client: Client, day: str, path: Path) -> dict[str, Decimal]:
    """``out_trade_no -> amount`` of the day's successful payments, from WeChat Pay's bill."""
    async with client:
        await client.bills.download(path, bill_date=day, bill_type="SUCCESS", tar_type="GZIP")
    return {
        record["商户订单号"]: Decimal(record["应结订单金额"])
        for record in read_bill(path)
        if record["交易状态"] == "SUCCESS"
    }


def differences(ours: dict[str, Decimal], theirs: dict[str, Decimal]) -> list[str]:
    lines = [f"{no}: paid {ours[no]} here, not in the bill" for no in ours.keys() - theirs]
    lines += [f"{no}: in the bill ({theirs[no]}), unknown here" for no in theirs.keys() - ours]
    lines += [
        f"{no}: {ours[no]} here, {theirs[no]} in the bill"
        for no in ours.keys() & theirs.keys()
        if ours[no] != theirs[no]
    ]
    return sorted(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("day", help="YYYY-MM-DD")
    parser.add_argument("orders", type=Path, help="CSV: out_trade_no,amount")
    parser.add_argument("--keep", type=Path, default=None, help="where to keep the bill")
    args = parser.parse_args(argv)

    from settings import client_from_env

    with args.orders.open(newline="", encoding="utf-8") as f:
        ours = {row["out_trade_no"]: Decimal(row["amount"]) for row in csv.DictReader(f)}
    bill = args.keep or Path(f"bill-{args.day}.csv")
    theirs = asyncio.run(paid_in_bill(client_from_env(), args.day, bill))
    found = differences(ours, theirs)
    for line in found:
        print(line)
    print(f"{len(theirs)} payments in the bill, {len(ours)} here, {len(found)} differences")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
