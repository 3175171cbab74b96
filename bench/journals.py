"""What the batch journal costs: no journal, SQLite, PostgreSQL with 1 and 4 workers, one run.

    .venv/bin/python bench/journals.py                 # 10 000 items at c64, 3 runs, medians
    .venv/bin/python bench/journals.py --quick         # smoke test: 500 items, 1 run
    .venv/bin/python bench/journals.py --rate 2000     # paced at 2 000 items/s (issue 19's goal)
    .venv/bin/python bench/journals.py --postgres postgresql://...   # an existing server

The fake server (``bench/batch.py --serve``) runs in its own process pinned to one core, each
row in fresh processes pinned to the other(s). Without ``--postgres`` a throwaway PostgreSQL
cluster is started (tests/_servers.py: Debian's ``postgresql`` package), unpinned. Rows:

- ``plain``: ``--concurrency`` tasks awaiting ``client[...].post(...)``: no journal, no retries;
- ``memory``: ``client.batch(..., journal=":memory:")``: the batch machinery, nothing on disk;
- ``sqlite``: an SQLite journal file (WAL, synchronous=NORMAL);
- ``pg``: a PostgreSQL journal, one worker;
- ``pg4``: a PostgreSQL journal, four worker processes on one batch (each with the whole input
  and ``--concurrency / 4`` calls in flight); items/s from the common start to the last end.

Reported per row: items/s, client CPU per item (all of the row's processes), and against
``plain`` in the same run: the ratio of items/s and the extra CPU per item.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TEMPLATE = "v3/marketing/favor/users/{openid}/coupons"
ROWS = ("plain", "memory", "sqlite", "pg", "pg4")
WARMUP = 200


async def _row(name: str, config: dict[str, Any]) -> dict[str, Any]:
    import anyio

    from wechatpay_chain import BatchCall, Client, RateLimit
    from wechatpay_chain.stores import PostgresJournal

    options = config["options"]
    mchid = options["mchid"]
    items, concurrency, prefix = config["items"], config["concurrency"], config["prefix"]
    rate = config.get("rate")
    client = Client(**options, rate_limit=RateLimit(default=rate) if rate else None)
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

    if name.startswith("pg"):
        import psycopg_pool  # noqa: F401 - imported once per process, not a per-item cost

    async with client:
        await plain([f"{prefix}w{os.getpid()}-{i}" for i in range(WARMUP)])
        openids = [f"{prefix}{i}" for i in range(items)]
        await anyio.sleep(max(0.0, config.get("start_at", 0) - time.time()))
        started, cpu = time.time(), time.process_time()
        with tempfile.TemporaryDirectory() as folder:
            journal: Any
            if name == "plain":
                await plain(openids)
            else:
                if name == "memory":
                    journal = ":memory:"
                elif name == "sqlite":
                    journal = os.path.join(folder, "journal.sqlite")
                else:
                    journal = PostgresJournal(config["dsn"], batch=config["batch"])
                summary = await client.batch(
                    send,
                    openids,
                    journal=journal,
                    concurrency=concurrency,
                    progress=False,
                    retry=False,
                )
                done = summary.batch["done"] if summary.batch else summary.succeeded
                assert done == items, str(summary)
        ended, cpu = time.time(), time.process_time() - cpu
    return {"started": started, "ended": ended, "cpu": cpu}


def run_row(name: str, config_path: str) -> None:
    import anyio

    with open(config_path, encoding="utf-8") as file:
        config = json.load(file)
    if config.get("cpus"):
        os.sched_setaffinity(0, set(config["cpus"]))
    print(json.dumps(anyio.run(_row, name, config)), flush=True)


def _measure(row: str, config: dict[str, Any], folder: str) -> dict[str, Any]:
    workers = 4 if row == "pg4" else 1
    config = dict(config, concurrency=max(1, config["concurrency"] // workers))
    if row.startswith("pg"):
        config["batch"] = "bench-" + secrets.token_hex(4)
    if workers > 1:
        config["start_at"] = time.time() + 4.0  # after every worker's start-up and warm-up
    path = os.path.join(folder, f"{row}.json")
    with open(path, "w", encoding="utf-8") as file:
        json.dump(config, file)
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, "--row", row, "--config", path],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    found = []
    for process in processes:
        out, err = process.communicate(timeout=900)
        if process.returncode != 0:
            raise SystemExit(f"row {row} failed:\n{err[-3000:]}")
        found.append(json.loads(out))
    elapsed = max(f["ended"] for f in found) - min(f["started"] for f in found)
    items = config["items"]
    return {
        "items_per_s": items / elapsed,
        "cpu_per_item_us": sum(f["cpu"] for f in found) / items * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, help="pace every row at this many items/s")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"from {','.join(ROWS)}")
    parser.add_argument("--postgres", help="a DSN (default: a throwaway cluster)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the raw results here")
    parser.add_argument("--row", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
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
    with contextlib.ExitStack() as stack:
        dsn = args.postgres
        if dsn is None and any(r.startswith("pg") for r in rows):
            sys.path.insert(0, str(HERE.parent / "tests"))
            from _servers import postgres_cluster

            dsn = stack.enter_context(postgres_cluster())
        server = subprocess.Popen(
            [sys.executable, str(HERE / "batch.py"), "--serve"],
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
                            "rate": args.rate,
                            "dsn": dsn,
                        }
                        results[row].append(_measure(row, config, folder))
        finally:
            server.stdin.close()
            server.wait(timeout=30)

    def median(row: str, key: str) -> float:
        return statistics.median(r[key] for r in results[row])

    paced = f", paced at {args.rate:.0f}/s" if args.rate else ""
    print(
        f"{args.items} items, concurrency {args.concurrency}{paced}, {args.runs} run(s), "
        f"median; server: {started['engine']} on cpu {env.get('BENCH_SERVER_CPU', 'any')}, "
        f"rows on cpu(s) {client_cpus}"
    )
    print(f"{'row':<9}{'items/s':>10}{'cpu/item':>12}{'ratio':>8}{'extra cpu/item':>17}")
    for row in rows:
        rate, cpu = median(row, "items_per_s"), median(row, "cpu_per_item_us")
        line = f"{row:<9}{rate:>10.0f}{cpu:>10.0f}us"
        if row != "plain" and "plain" in results:
            ratio = rate / median("plain", "items_per_s")
            line += f"{ratio:>8.2f}{cpu - median('plain', 'cpu_per_item_us'):>15.0f}us"
        print(line)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump({"args": vars(args), "results": results}, file, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
