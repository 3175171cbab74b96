"""Profile one benchmark row in-process against the benchmark server.

    .venv/bin/python bench/profile_rows.py chain --scenario c64 --tool cprofile
    .venv/bin/python bench/profile_rows.py chain --tool pyinstrument --requests 3000

cProfile prints the functions with the most own time and the most cumulative time (per
request, in µs, so rows are comparable); pyinstrument prints its call tree. Profilers add
overhead, so compare shares rather than absolute numbers with ``throughput.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import throughput


async def _burst(send: Any, concurrency: int, total: int) -> None:
    done = 0

    async def worker() -> None:
        nonlocal done
        while done < total:
            done += 1
            await send()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("row", help="an async row of throughput.py, e.g. chain, httpx")
    parser.add_argument("--scenario", choices=("seq", "c64"), default="seq")
    parser.add_argument("--tool", choices=("cprofile", "pyinstrument"), default="cprofile")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="tottime", help="cProfile sort key")
    args = parser.parse_args()
    if throughput.BY_NAME[args.row].kind != "async":
        parser.error("profile async rows only")
    cpus = os.sched_getaffinity(0)
    server = throughput.ServerProcess("fast", 1 if len(cpus) > 1 else None)
    if len(cpus) > 1:
        os.sched_setaffinity(0, {0})
    concurrency = 64 if args.scenario == "c64" else 1
    try:

        async def run() -> None:
            send, aclose = await throughput.make_async_row(args.row, server.options)
            await _burst(send, concurrency, 200)  # warm-up: connections, caches
            if args.tool == "cprofile":
                profile = cProfile.Profile()
                t0 = time.perf_counter()
                profile.enable()
                await _burst(send, concurrency, args.requests)
                profile.disable()
                elapsed = time.perf_counter() - t0
                print(f"{args.requests / elapsed:.0f} req/s under cProfile")
                out = io.StringIO()
                stats = pstats.Stats(profile, stream=out)
                stats.sort_stats(args.sort).print_stats(args.top)
                print(out.getvalue())
            else:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0002, async_mode="disabled")
                profiler.start()
                await _burst(send, concurrency, args.requests)
                profiler.stop()
                print(profiler.output_text(unicode=True, color=False, show_all=False))
            await aclose()

        asyncio.run(run())
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
