"""What the typed endpoint layer costs: users' type checkers, import time, chain building.

Both packages are laid out as a user's install has them (the package directory on
``PYTHONPATH``, no editable finder): the typed tree (the work tree) and a baseline (default:
``main``, or any git ref without the typed layer). The same user script
(``bench/typing_user.py``) is checked against each, in one run, pairs alternating
(``farm-bench --vs``):

- mypy ``--strict`` cold (``--cache-dir=/dev/null``: nothing read or written) and warm (the
  cache of a previous run, nothing changed);
- pyright (strict);
- ``import wechatpay_chain`` in a fresh interpreter, and building a chain node plus the
  arguments of a call (``client.v3.pay.transactions.outTradeNo._out_trade_no_``) in-process.

Usage: ``python bench/typing_cost.py [--baseline REF] [--runs N]``; needs ``farm-bench``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USER = ROOT / "bench" / "typing_user.py"
BIN = Path(sys.executable).parent


def install(ref: str | None, into: Path) -> Path:
    """The package of ``ref`` (None: the work tree) installed into ``into/site``."""
    source = into / "src"
    if ref is None:
        source = ROOT
    else:
        source.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    # The package directory as a wheel lays it out (py.typed and the .pyi stubs included);
    # copied rather than built so that no build backend is needed.
    site = into / "site"
    shutil.copytree(
        source / "wechatpay_chain",
        site / "wechatpay_chain",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return site


def farm(label: str, a: list[str], b: list[str], env_a: str, env_b: str, runs: int) -> None:
    """``farm-bench`` A (typed) against B (baseline); PYTHONPATH picks the package.

    Run from an empty directory: a checker started in the repository would find the package
    in the current directory, check it as the user's own code and report on it."""
    wrap_a = ["env", f"PYTHONPATH={env_a}", *a]
    wrap_b = shlex.join(["env", f"PYTHONPATH={env_b}", *b])
    print(f"\n## {label}\n", flush=True)
    subprocess.run(
        ["farm-bench", "-n", str(runs), "--timeout", "900", "--vs", wrap_b, "--", *wrap_a],
        check=False,
        cwd=Path(env_a).parent.parent,
    )


def chain_costs(typed: Path, base: Path) -> tuple[float, float]:
    """Best of three alternating runs each: the machine's drift hits both alike."""
    runs: dict[Path, list[float]] = {typed: [], base: []}
    for _ in range(3):
        for site in (typed, base):
            runs[site].append(chain_cost(site))
    return min(runs[typed]), min(runs[base])


def chain_cost(site: Path) -> float:
    """Microseconds to build a 5-segment node from a fresh root (no node cached)."""
    code = (
        f"import sys; sys.path.insert(0, {str(site)!r})\n"
        "import timeit, wechatpay_chain as w\n"
        "c = w.Client()\n"
        "def f():\n"
        "    return w.Chain(c, '').v3.pay.transactions.outTradeNo._out_trade_no_\n"
        "n = 20000\n"
        "print(min(timeit.repeat(f, number=n, repeat=5)) / n * 1e6)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main", help="git ref without the typed layer")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    if shutil.which("farm-bench") is None:
        print("farm-bench not found", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="typing-cost-"))
    try:
        typed = install(None, work / "typed")
        base = install(args.baseline, work / "base")
        assert (typed / "wechatpay_chain" / "endpoints" / "__init__.pyi").exists()
        py = str(BIN / "python")
        mypy = [str(BIN / "mypy"), "--strict", "--python-executable", py, "--no-error-summary"]
        user = work / "user.py"
        shutil.copy(USER, user)
        # The same script with its literal item access written as attributes.
        attrs = work / "user_attrs.py"
        attrs.write_text(
            USER.read_text("utf-8").replace(
                'client["v3/refund/domestic/refunds"]', "client.v3.refund.domestic.refunds"
            ),
            encoding="utf-8",
        )
        cold = [*mypy, "--cache-dir=/dev/null", str(user)]
        farm("mypy --strict, cold", cold, cold, str(typed), str(base), args.runs)
        for site, cache in ((typed, "typed"), (base, "base")):
            subprocess.run(
                [*mypy, "--cache-dir", str(work / cache / "cache"), str(user)],
                env={**os.environ, "PYTHONPATH": str(site)},
                cwd=work,
                check=False,
                capture_output=True,
            )
        warm = [*mypy, "--cache-dir", str(work / "typed" / "cache"), str(user)]
        warm_b = [*mypy, "--cache-dir", str(work / "base" / "cache"), str(user)]
        farm(
            "mypy --strict, warm (nothing changed)", warm, warm_b, str(typed), str(base), args.runs
        )
        # The user edits the script: mypy checks it again against its cached dependencies.
        touch = f"printf '\\n' >> {shlex.quote(str(user))} && "
        farm(
            "mypy --strict, warm (the user's script edited)",
            ["sh", "-c", touch + shlex.join(warm)],
            ["sh", "-c", touch + shlex.join(warm_b)],
            str(typed),
            str(base),
            args.runs,
        )
        pyright = str(BIN / "pyright")
        if Path(pyright).exists():
            config = work / "pyrightconfig.json"
            config.write_text('{"typeCheckingMode": "strict"}\n', encoding="utf-8")
            for label, script in (("", user), (", no literal item access", attrs)):
                cmd = [pyright, "-p", str(config), "--pythonpath", py, str(script)]
                farm(f"pyright (strict){label}", cmd, cmd, str(typed), str(base), args.runs)
        imp = [py, "-c", "import wechatpay_chain"]
        farm("import wechatpay_chain", imp, imp, str(typed), str(base), max(args.runs, 10))
        print("\n## building client.v3.pay.transactions.outTradeNo._out_trade_no_ (µs)\n")
        typed_us, base_us = chain_costs(typed, base)
        print(f"typed {typed_us:.2f}  baseline {base_us:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
