"""Where the tests find what they read: the sample payloads, the benchmarks, helper scripts."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent
PROJECT = TESTS.parent
#: Real sample payloads (WeChat Pay answers, notifications, bills, a logo).
FIXTURES = PROJECT.parent / "shared" / "fixtures"
BENCH = PROJECT / "bench"
BATCH_WORKER = TESTS / "_batch_worker.py"
