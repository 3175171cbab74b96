"""Where the tests find what they read: the sample payloads, the benchmarks, helper scripts."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent
PROJECT = TESTS.parent
#: Real sample payloads (WeChat Pay answers, notifications, bills, a logo): inside the project,
#: so that the tests of an unpacked sdist find them too.
FIXTURES = TESTS / "fixtures"
BENCH = PROJECT / "bench"
BATCH_WORKER = TESTS / "_batch_worker.py"
