"""Peak memory of large files: a download through ``sink=``, the bill helper, an upload.

    .venv/bin/python bench/memory.py                 # 1 GiB each (about a minute)
    .venv/bin/python bench/memory.py --quick         # 32 MiB each: smoke test, a few seconds

The fake WeChat Pay server runs in its own process and serves a bill of the given size
(generated, never held whole). Each scenario runs in a fresh client process, which warms
up (imports, pools, one small signed call), takes its resident set size as the baseline,
resets the kernel's peak counter, runs, and reports peak RSS minus baseline:

- ``sink``:   ``GET`` the bill's ``download_url`` with ``sink=path`` (no checks);
- ``bill``:   ``client.bills.download(path, tar_type="GZIP")``: the server gzips on the fly,
              the client gunzips, checks the SHA1 and writes the CSV;
- ``upload``: ``client.media.upload(path)`` of a file of that size (digest pass + stream).

Each must stay under ``--limit-mb`` (50 MB) of growth; the exit status says whether all did.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
BILL_DATE = "2024-01-31"
UPLOAD = "v3/bench/upload"
SCENARIOS = ("sink", "bill", "upload")


# --- the server process ----------------------------------------------------------------------
def bill_chunks(size: int) -> Iterator[bytes]:
    """A valid trade bill of about ``size`` bytes: header, rows repeated, summary."""
    from wechatpay_chain.testing import make_bill

    sample = make_bill(BILL_DATE, records=4000).split(b"\r\n")
    header, rows = sample[0] + b"\r\n", b"\r\n".join(sample[1:-3]) + b"\r\n"
    block = rows * max(1, MIB // len(rows))
    yield header
    sent = len(header)
    while sent + len(block) <= size:
        yield block
        sent += len(block)
    yield b"\r\n".join(sample[-3:])


def serve(size: int) -> None:
    from wechatpay_chain.testing import FakeWechatPay

    with FakeWechatPay() as server:
        server.files.add_bill(lambda: bill_chunks(size), bill_date=BILL_DATE)
        server.files.accept_uploads(UPLOAD)
        options = {
            key: value.decode() if isinstance(value, bytes) else value
            for key, value in server.client_options().items()
        }
        options["certs"] = {k: v.decode() for k, v in server.certs().items()}
        print(json.dumps(options), flush=True)
        sys.stdin.read()  # until the parent closes our stdin


# --- a client process --------------------------------------------------------------------------
def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


async def run_scenario(name: str, options: dict[str, Any], size: int, work: Path) -> dict[str, Any]:
    from wechatpay_chain import Client

    async with Client(**options) as client:
        # warm-up: imports, the connection pool, signing and verifying once
        await client.v3.bill.tradebill.get(query={"bill_date": "2024-01-01"})
        source = work / "upload.bin"
        if name == "upload":
            block = os.urandom(MIB)
            with open(source, "wb") as fh:
                for _ in range(size // MIB):
                    fh.write(block)
            await client.media.upload(b"warm", filename="w.bin", to=UPLOAD)
        baseline = _status("VmRSS")
        exact = _reset_peak()
        started = time.perf_counter()
        target = work / "out.csv"
        if name == "sink":
            info = (await client.v3.bill.tradebill.get(query={"bill_date": BILL_DATE})).json()
            scheme, _, rest = info["download_url"].partition("://")
            host, _, path = rest.partition("/")
            resp = await client.chain(path).get(base_url=f"{scheme}://{host}/", sink=target)
            moved = resp.extensions["sink_size"]
        elif name == "bill":
            resp = await client.bills.download(target, bill_date=BILL_DATE, tar_type="GZIP")
            moved = resp.extensions["sink_size"]
        else:
            resp = await client.media.upload(source, to=UPLOAD, max_size=None)
            assert resp.json()["media_id"]
            moved = source.stat().st_size
        seconds = time.perf_counter() - started
        peak = _status("VmHWM")
    return {
        "scenario": name,
        "bytes": moved,
        "seconds": round(seconds, 2),
        "mib_per_s": round(moved / MIB / seconds, 1),
        "baseline_mb": round(baseline / 1e6, 1),
        "growth_mb": round((peak - baseline) / 1e6, 1),
        "peak_reset": exact,
    }


def client_main(name: str, size: int) -> None:
    import anyio

    options = json.loads(sys.stdin.readline())
    with tempfile.TemporaryDirectory(prefix="wechatpay-bench-") as work:
        result = anyio.run(run_scenario, name, options, size, Path(work))
    print(json.dumps(result), flush=True)


# --- the driver --------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="file size (default 1024)")
    parser.add_argument("--quick", action="store_true", help="32 MiB per scenario")
    parser.add_argument("--limit-mb", type=float, default=50.0, help="allowed RSS growth")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=SCENARIOS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.size_mib = 32
    size = args.size_mib * MIB
    if args.serve:
        serve(size)
        return 0
    if args.client:
        client_main(args.client, size)
        return 0

    me = [sys.executable, os.path.abspath(__file__), "--size-mib", str(args.size_mib)]
    server = subprocess.Popen(
        [*me, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert server.stdin is not None and server.stdout is not None
    options = server.stdout.readline()
    ok = True
    try:
        print(f"{args.size_mib} MiB per scenario; allowed peak RSS growth {args.limit_mb} MB")
        for name in args.scenarios.split(","):
            done = subprocess.run(
                [*me, "--client", name], input=options, capture_output=True, text=True
            )
            if done.returncode != 0:
                print(f"{name:7} FAILED\n{done.stderr}")
                ok = False
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            passed = row["growth_mb"] < args.limit_mb
            ok = ok and passed
            note = "" if row["peak_reset"] else " (peak not resettable: an upper bound)"
            print(
                f"{name:7} {row['bytes'] / MIB:8.0f} MiB in {row['seconds']:6.1f} s "
                f"({row['mib_per_s']:6.1f} MiB/s)  peak RSS growth {row['growth_mb']:6.1f} MB "
                f"(baseline {row['baseline_mb']} MB)  {'ok' if passed else 'TOO MUCH'}{note}"
            )
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
