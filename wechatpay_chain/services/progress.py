"""A one-line progress display for batches, shown only on a terminal (never in CI or logs)."""

from __future__ import annotations

import os
import shutil
import sys
from typing import TextIO

__all__ = ["Progress", "progress_stream"]


def _on_terminal(stream: TextIO) -> bool:
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def progress_stream(progress: bool | TextIO | None) -> TextIO | None:
    """Where to draw: None (auto) means stderr when it is a terminal and not CI."""
    if progress is False:
        return None
    if progress is None:
        return sys.stderr if _on_terminal(sys.stderr) else None
    if progress is True:
        return sys.stderr
    if not hasattr(progress, "write"):
        from .._exceptions import InvalidArgumentError

        raise InvalidArgumentError(
            f"progress must be None, True, False or a text stream, got {type(progress).__name__}"
        )
    return progress


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """Redraws one line: a bar when the total is known, counts, rate and time left."""

    __slots__ = ("_stream", "_width", "total")

    def __init__(self, stream: TextIO, total: int | None) -> None:
        self._stream = stream
        self.total = total
        self._width = max(40, shutil.get_terminal_size((80, 24)).columns - 1)

    def line(self, done: int, ok: int, failed: int, skipped: int, elapsed: float) -> str:
        rate = done / elapsed if elapsed > 0 else 0.0
        counts = f"ok {ok} failed {failed} skipped {skipped} {rate:,.0f}/s {_duration(elapsed)}"
        total = self.total
        if not total:
            return f"{done:,} items {counts}"[: self._width]
        share = min(1.0, done / total)
        left = f" ETA {_duration((total - done) / rate)}" if rate > 0 and done < total else ""
        head = f"{done:,}/{total:,} {share:4.0%} "
        tail = f" {counts}{left}"
        room = self._width - len(head) - len(tail) - 2
        if room >= 10:
            filled = int(room * share)
            head += "[" + "#" * filled + "." * (room - filled) + "]"
        return (head + tail)[: self._width]

    def draw(self, done: int, ok: int, failed: int, skipped: int, elapsed: float) -> None:
        text = self.line(done, ok, failed, skipped, elapsed)
        try:
            self._stream.write("\r" + text.ljust(self._width))
            self._stream.flush()
        except (OSError, ValueError):
            pass  # a closed terminal must not stop the batch

    def finish(self, done: int, ok: int, failed: int, skipped: int, elapsed: float) -> None:
        self.draw(done, ok, failed, skipped, elapsed)
        try:
            self._stream.write("\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass
