"""The benchmark server lives in ``bench/`` (not in the package): tests import it from there."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import fastserver  # noqa: E402

__all__ = ["fastserver"]
