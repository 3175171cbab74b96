"""Differential fuzzing of the engine's answer parsing against h11, for as long as you like.

    .venv/bin/python bench/fuzz_engine.py                      # 60 s, a random seed
    .venv/bin/python bench/fuzz_engine.py --seconds 600 --seed 7
    .venv/bin/python bench/fuzz_engine.py --count 200000       # a fixed number of answers

The same comparison as tests/transport/test_engine_fuzz.py (bounded, in the suite), without
its bound: random and mutated answers (tests/_parser_diff.answer), split at random points,
fed to the engine's connection with each parser (httptools, h11) and to a bare h11 connection; the
verdicts must agree, except where the engine refuses by design what h11 accepts (the
"Differences from h11" list in the README, _parser_diff.STRICTER and its neighbours). It
also checks that a connection is never reused after bytes that followed an answer.
Prints how many answers were compared, how many each side accepted, how many were let
through by each documented difference, and every disagreement (up to ``--show``); exits 1
when there was one.
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _parser_diff import (  # the harness lives beside the tests that use it
    HTTPTOOLS_LENIENT,
    HTTPTOOLS_STRICTER,
    STRICTER,
    EngineSide,
    agree,
    answer,
    h11_verdict_and_traits,
    split,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--count", type=int, default=0, help="stop after this many answers")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--show", type=int, default=5, help="disagreements printed per kind")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    rng = random.Random(seed)
    sides = {name: EngineSide(name) for name in ("httptools", "h11")}
    tally: collections.Counter[str] = collections.Counter()
    excused: collections.Counter[str] = collections.Counter()
    wrong: dict[str, list[str]] = collections.defaultdict(list)
    stop = time.monotonic() + args.seconds
    compared = 0
    while (compared < args.count) if args.count else (time.monotonic() < stop):
        compared += 1
        method, data = answer(rng)
        cuts = [rng.randrange(len(data) + 1) for _ in range(rng.randint(0, 6))]
        chunks = split(data, cuts)
        reference, traits = h11_verdict_and_traits(method, chunks)
        tally["reference h11 " + reference[0]] += 1
        for name, side in sides.items():
            verdict, reused = side.verdict(method, chunks)
            tally[f"engine ({name}) {verdict[0]}"] += 1
            kind = ""
            if not agree(verdict, reference, traits, name):
                kind = f"{name}: h11 {reference[0]}, engine {verdict[0]}"
            elif verdict != reference:
                known = (
                    STRICTER | HTTPTOOLS_STRICTER | HTTPTOOLS_LENIENT
                    if name == "httptools"
                    else STRICTER
                )
                for trait in sorted(traits & known):
                    excused[f"{name} {trait}"] += 1
            elif reused and "trailing" in traits:
                kind = f"{name}: reused after bytes that followed the answer"
            if kind:
                tally["disagreements"] += 1
                if len(wrong[kind]) < args.show:
                    wrong[kind].append(f"{method!r} {data!r} cut at {sorted(set(cuts))}")
    print(f"seed {seed}: {compared} answers compared")
    for key, value in sorted(tally.items()):
        print(f"  {key}: {value}")
    for key, value in sorted(excused.items()):
        print(f"  a documented difference ({key}): {value}")
    for kind, examples in wrong.items():
        print(f"DISAGREEMENT {kind}")
        for example in examples:
            print("   ", example)
    for side in sides.values():
        side.close()
    return 1 if tally["disagreements"] else 0


if __name__ == "__main__":
    sys.exit(main())
