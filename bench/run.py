"""Run every benchmark: quick by default (the smoke test `make bench` and CI run), or --full.

    .venv/bin/python bench/run.py          # smoke: tiny runs, no speed thresholds, < 40 s
    .venv/bin/python bench/run.py --full   # the numbers for bench/README.md (several minutes)

Exit status is non-zero when a benchmark fails (a row that errors, a wrong answer, a memory
bound that ``memory.py`` enforces), never because a rate is low: rates are read by people,
on a quiet machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

BENCHMARKS = [
    ("throughput", ["throughput.py"]),
    ("overhead", ["overhead.py"]),
    ("memory", ["memory.py"]),
    ("batch", ["batch.py"]),
]


def main(argv: list[str]) -> int:
    full = "--full" in argv
    failed = []
    for name, command in BENCHMARKS:
        if not os.path.exists(os.path.join(HERE, command[0])):
            continue
        args = [sys.executable, os.path.join(HERE, command[0]), *command[1:]]
        if not full:
            args.append("--quick")
        print(f"== {name}: {' '.join(os.path.basename(a) for a in args[1:])}", flush=True)
        started = time.perf_counter()
        code = subprocess.call(args, cwd=HERE)
        print(f"== {name}: exit {code} in {time.perf_counter() - started:.1f} s", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
