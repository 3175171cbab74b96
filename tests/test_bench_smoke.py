"""The benchmarks run (smoke test, no thresholds): every row answers, every answer checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# The benchmark harness does not depend on the Python version: `make test` runs it once.
pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_throughput_harness_measures_every_row(tmp_path: Path) -> None:
    out = tmp_path / "throughput.json"
    rows = ["httpx", "lean", "chain", "httpx-sync", "chain-sync"]
    proc = subprocess.run(
        [sys.executable, str(BENCH / "throughput.py"), "--quick", "--duration", "0.2",
         "--rows", ",".join(rows), "--json", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(out.read_text())["summary"]
    assert list(summary) == rows
    for name, entry in summary.items():
        assert "note" not in entry, (name, entry["note"])
        for scenario in ("seq", "c64"):
            assert entry[scenario]["rate"] > 0, (name, scenario)
            assert entry[scenario]["errors"] == 0, (name, scenario)
            assert entry[scenario]["cpu_us"] > 0, (name, scenario)
    assert summary["httpx"]["seq"]["ratio"] == 1.0
    assert "| `chain` |" in proc.stdout


def test_overhead_breakdown_runs() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH / "overhead.py"), "--quick"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "SDK's own" in proc.stdout


def test_php_row_runs_or_is_skipped_cleanly(tmp_path: Path) -> None:
    """Without PHP or the SDK (CI) the row is skipped, not failed; with them it measures."""
    out = tmp_path / "php.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "throughput.py"), "--quick", "--duration", "0.2",
         "--rows", "httpx,php", "--json", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    entry = json.loads(out.read_text())["summary"]["php"]
    if "note" in entry:
        assert "not installed" in entry["note"]
        assert "seq" not in entry
    else:
        assert entry["seq"]["rate"] > 0 and entry["seq"]["errors"] == 0
        assert entry["c64"]["rate"] > 0 and entry["c64"]["errors"] == 0
