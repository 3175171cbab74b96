"""Batch overhead: ``client.batch`` against the plain client loop (send one coupon per openid).

    .venv/bin/python bench/batch.py                       # 10 000 items at c64, 3 runs, medians
    .venv/bin/python bench/batch.py --quick               # smoke test: 500 items, 1 run
    .venv/bin/python bench/batch.py --items 100000 --rows batch --runs 1   # memory stays flat

The fake server (``BenchmarkWechatPay``: fast HTTP front, answer signatures reused within a
second, so it is not the bottleneck) runs in its own process pinned to one core; every row
runs in a fresh process pinned to the other core(s). Rows:

- ``plain``: the loop a user writes by hand: ``--concurrency`` tasks pulling openids from one
  iterator and awaiting ``client[...].post(...)``, no journal, no retries;
- ``batch``: ``client.batch(send, openids, journal=<temp file>, concurrency=...)`` with its
  default retry policy and an SQLite journal (WAL, synchronous=NORMAL);
- ``batch-durable``: the same with ``Journal(path, durable=True)`` (an fsync per commit).

Reported per row: items/s, client CPU per item (``process_time`` / items), peak RSS of the
row process, and for the batch rows the ratio of items/s to ``plain`` measured in the same
run (target >= 0.90) and the overhead per item (CPU and wall) against ``plain``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

TEMPLATE = "v3/marketing/favor/users/{openid}/coupons"
ROWS = ("plain", "batch", "batch-durable")
WARMUP = 200


# --- inside a row process -----------------------------------------------------------------
async def _row(name: str, config: dict[str, Any]) -> dict[str, Any]:
    import anyio

    from wechatpay_chain import BatchCall, Client, Journal

    options = config["options"]
    mchid = options["mchid"]
    items, concurrency, prefix = config["items"], config["concurrency"], config["prefix"]
    client = Client(**options)
    node = client[TEMPLATE]

    def body(number: str) -> dict[str, str]:
        return {
            "stock_id": "9856000",
            "out_request_no": number,
            "appid": "wxd678efh567hg6787",
            "stock_creator_mchid": mchid,
        }

    async def plain(openids: list[str]) -> None:
        source = iter(openids)

        async def worker() -> None:
            for openid in source:
                resp = await node.post(openid=openid, json=body(f"N{openid}"))
                assert resp.status_code == 200

        async with anyio.create_task_group() as group:
            for _ in range(concurrency):
                group.start_soon(worker)

    async def send(call: BatchCall[str]) -> Any:
        return await call.client[TEMPLATE].post(openid=call.item, json=body(call.idempotency_key))

    async with client:
        await plain([f"{prefix}w{i}" for i in range(WARMUP)])  # connections, caches
        openids = [f"{prefix}{i}" for i in range(items)]
        started, cpu = time.perf_counter(), time.process_time()
        if name == "plain":
            await plain(openids)
        else:
            with tempfile.TemporaryDirectory() as folder:
                journal = Journal(
                    os.path.join(folder, "journal.sqlite"), durable=name == "batch-durable"
                )
                summary = await client.batch(
                    send, openids, journal=journal, concurrency=concurrency, progress=False
                )
                assert summary.succeeded == items, str(summary)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "row": name,
        "items_per_s": items / elapsed,
        "wall_per_item_us": elapsed / items * 1e6,
        "cpu_per_item_us": cpu / items * 1e6,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_row(name: str, config_path: str) -> None:
    import anyio

    with open(config_path, encoding="utf-8") as file:
        config = json.load(file)
    if config.get("cpus"):
        os.sched_setaffinity(0, set(config["cpus"]))
    print(json.dumps(anyio.run(_row, name, config)), flush=True)


# --- the server process ---------------------------------------------------------------------
def serve(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    from wechatpay_chain.testing._fake import private_pem

    try:
        from fastserver import BenchmarkWechatPay

        server: Any = BenchmarkWechatPay()
        engine = "fast"
    except ImportError:
        from wechatpay_chain.testing import FakeWechatPay

        server, engine = FakeWechatPay(), "h11"
    server.start()
    m = server.merchant
    options = {
        "mchid": m.mchid,
        "serial": m.serial,
        "private_key": private_pem(m.private_key).decode(),
        "certs": {k: v.decode() for k, v in server.certs().items()},
        "base_url": server.base_url,
    }
    print(json.dumps({"options": options, "engine": engine}), flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin
    server.stop()


# --- the driver -----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", default=",".join(ROWS[:2]), help=f"from {','.join(ROWS)}")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the raw results here")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--row", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(int(os.environ["BENCH_SERVER_CPU"]) if "BENCH_SERVER_CPU" in os.environ else None)
        return 0
    if args.row:
        run_row(args.row, args.config)
        return 0
    if args.quick:
        args.items, args.runs = 500, 1
    rows = [r for r in args.rows.split(",") if r]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; known: {ROWS}")

    cpus = sorted(os.sched_getaffinity(0))
    env = dict(os.environ)
    client_cpus: list[int] = cpus
    if len(cpus) >= 2:
        env["BENCH_SERVER_CPU"] = str(cpus[-1])
        client_cpus = cpus[:-1]
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    started = json.loads(server.stdout.readline())
    results: dict[str, list[dict[str, Any]]] = {row: [] for row in rows}
    try:
        with tempfile.TemporaryDirectory() as folder:
            for run in range(args.runs):
                for row in rows if run % 2 == 0 else reversed(rows):
                    config = {
                        "options": started["options"],
                        "items": args.items,
                        "concurrency": args.concurrency,
                        "prefix": f"r{run}{row}-",
                        "cpus": client_cpus if len(cpus) >= 2 else None,
                    }
                    path = os.path.join(folder, "config.json")
                    with open(path, "w", encoding="utf-8") as file:
                        json.dump(config, file)
                    out = subprocess.run(
                        [sys.executable, __file__, "--row", row, "--config", path],
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                    if out.returncode != 0:
                        print(out.stderr, file=sys.stderr)
                        return 1
                    results[row].append(json.loads(out.stdout))
    finally:
        server.stdin.close()
        server.wait(timeout=30)

    def median(row: str, key: str) -> float:
        return statistics.median(r[key] for r in results[row])

    print(
        f"{args.items} items, concurrency {args.concurrency}, {args.runs} run(s), median; "
        f"server: {started['engine']} on cpu {env.get('BENCH_SERVER_CPU', 'any')}, "
        f"rows on cpu(s) {client_cpus}"
    )
    print(
        f"{'row':<15}{'items/s':>10}{'cpu/item':>12}{'peak RSS':>11}{'ratio':>8}"
        f"{'overhead/item (cpu, wall)':>28}"
    )
    for row in rows:
        rate, cpu = median(row, "items_per_s"), median(row, "cpu_per_item_us")
        line = f"{row:<15}{rate:>10.0f}{cpu:>10.0f}us{median(row, 'peak_rss_mb'):>9.1f}MB"
        if row != "plain" and "plain" in results:
            ratio = rate / median("plain", "items_per_s")
            extra_cpu = cpu - median("plain", "cpu_per_item_us")
            extra_wall = median(row, "wall_per_item_us") - median("plain", "wall_per_item_us")
            line += f"{ratio:>8.2f}{extra_cpu:>14.0f}us{extra_wall:>12.0f}us"
        print(line)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump({"args": vars(args), "results": results}, file, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
