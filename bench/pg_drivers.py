"""psycopg 3 or asyncpg for the PostgreSQL stores: the round trips they make, per driver.

    .venv/bin/python bench/pg_drivers.py [--postgres DSN]   # asyncpg: pip install asyncpg

Without ``--postgres`` a throwaway cluster is started (tests/_servers.py). Three ways to talk
to the server, on asyncio (asyncpg and psycopg's async connection exist for asyncio only):

- ``psycopg-thread``: psycopg's blocking connection called through ``anyio.to_thread`` (what
  the stores do: the same code on asyncio and trio);
- ``psycopg-async``: ``psycopg.AsyncConnection``;
- ``asyncpg``: ``asyncpg.connect``.

Two measures: a ``SELECT 1`` round trip (the de-duplication store makes one per claim and one
per finish), and a batch journal cycle for 256 items (load them with one ``unnest`` insert,
claim them with ``FOR UPDATE SKIP LOCKED``, record their outcomes with one update), reported
as journal items per second.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROUND_TRIPS = 2000
CYCLES = 40
N = 256

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS bench_items (batch text, seq bigserial, item_id text, "
    "state text, PRIMARY KEY (batch, item_id))"
)
LOAD = (
    "INSERT INTO bench_items (batch, item_id, state) SELECT {b}, u, 'pending' "
    "FROM unnest({ids}::text[]) AS u ON CONFLICT DO NOTHING"
)
CLAIM = (
    "WITH p AS (SELECT item_id FROM bench_items WHERE batch = {b} AND state = 'pending' "
    "ORDER BY seq LIMIT {n} FOR UPDATE SKIP LOCKED) UPDATE bench_items i SET state = 'sending' "
    "FROM p WHERE i.batch = {b} AND i.item_id = p.item_id RETURNING i.item_id"
)
RECORD = (
    "UPDATE bench_items i SET state = 'done' FROM unnest({ids}::text[]) AS u(item_id) "
    "WHERE i.batch = {b} AND i.item_id = u.item_id"
)


def psycopg_sql(sql: str) -> str:
    return sql.format(b="%(b)s", ids="%(ids)s", n="%(n)s")


def asyncpg_sql(sql: str) -> str:
    return sql.format(b="$1", ids="$2", n="$2")


async def measure(dsn: str) -> dict[str, tuple[float, float]]:
    import anyio
    import psycopg

    results: dict[str, tuple[float, float]] = {}

    def timed_cycles() -> Callable[[Callable[[str, list[str]], Awaitable[None]]], Awaitable[float]]:
        async def run(cycle: Callable[[str, list[str]], Awaitable[None]]) -> float:
            begun = time.perf_counter()
            for c in range(CYCLES):
                batch = f"b{time.time_ns()}-{c}"
                await cycle(batch, [f"o-{i}" for i in range(N)])
            return CYCLES * N / (time.perf_counter() - begun)

        return run

    # psycopg, blocking, through a worker thread
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)

        def one() -> None:
            conn.execute("SELECT 1").fetchone()

        begun = time.perf_counter()
        for _ in range(ROUND_TRIPS):
            await anyio.to_thread.run_sync(one)
        trip = (time.perf_counter() - begun) / ROUND_TRIPS * 1e6

        def cycle_sync(batch: str, ids: list[str]) -> None:
            conn.execute(psycopg_sql(LOAD), {"b": batch, "ids": ids})
            got = [r[0] for r in conn.execute(psycopg_sql(CLAIM), {"b": batch, "n": N})]
            conn.execute(psycopg_sql(RECORD), {"b": batch, "ids": got})

        async def cycle_thread(batch: str, ids: list[str]) -> None:
            await anyio.to_thread.run_sync(cycle_sync, batch, ids)

        results["psycopg-thread"] = (trip, await timed_cycles()(cycle_thread))

    aconn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    async with aconn:
        begun = time.perf_counter()
        for _ in range(ROUND_TRIPS):
            await (await aconn.execute("SELECT 1")).fetchone()
        trip = (time.perf_counter() - begun) / ROUND_TRIPS * 1e6

        async def cycle_async(batch: str, ids: list[str]) -> None:
            await aconn.execute(psycopg_sql(LOAD), {"b": batch, "ids": ids})
            cur = await aconn.execute(psycopg_sql(CLAIM), {"b": batch, "n": N})
            got = [r[0] for r in await cur.fetchall()]
            await aconn.execute(psycopg_sql(RECORD), {"b": batch, "ids": got})

        results["psycopg-async"] = (trip, await timed_cycles()(cycle_async))

    try:
        import asyncpg
    except ImportError:
        return results
    pg = await asyncpg.connect(dsn)
    try:
        begun = time.perf_counter()
        for _ in range(ROUND_TRIPS):
            await pg.fetchval("SELECT 1")
        trip = (time.perf_counter() - begun) / ROUND_TRIPS * 1e6

        async def cycle_asyncpg(batch: str, ids: list[str]) -> None:
            await pg.execute(asyncpg_sql(LOAD), batch, ids)
            got = [r[0] for r in await pg.fetch(asyncpg_sql(CLAIM), batch, N)]
            await pg.execute(asyncpg_sql(RECORD), batch, got)

        results["asyncpg"] = (trip, await timed_cycles()(cycle_asyncpg))
    finally:
        await pg.close()
    return results


def main(argv: list[str] | None = None) -> int:
    import anyio

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="a DSN (default: a throwaway cluster)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        dsn = args.postgres
        if dsn is None:
            sys.path.insert(0, str(HERE.parent / "tests"))
            from _servers import postgres_cluster

            dsn = stack.enter_context(postgres_cluster())
        runs: list[dict[str, tuple[float, float]]] = [
            anyio.run(measure, dsn) for _ in range(args.runs)
        ]
    print(f"median of {args.runs} runs; {ROUND_TRIPS} round trips, {CYCLES} cycles of {N} items")
    print(f"{'driver':<16}{'SELECT 1':>12}{'journal items/s':>18}")
    for name in runs[0]:
        trip = statistics.median(r[name][0] for r in runs)
        rate = statistics.median(r[name][1] for r in runs)
        print(f"{name:<16}{trip:>10.0f}us{rate:>18,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
