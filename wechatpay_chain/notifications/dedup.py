"""De-duplication: a re-sent notification is not handled twice."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Literal, Protocol

import anyio

from .._exceptions import InvalidArgumentError

__all__ = ["Claim", "Deduplicator", "MemoryDeduplicator", "finish_shielded"]

#: What a de-duplication store says about a notification id it is asked to claim.
Claim = Literal["new", "in_progress", "done"]


class Deduplicator(Protocol):
    """Remembers which notifications were handled, so a re-sent one is not handled twice.

    WeChat Pay re-sends a notification until it is acknowledged. ``claim`` is asked first:

    - ``"new"``: never seen; the caller now owns it and will call ``finish`` afterwards;
    - ``"in_progress"``: claimed by a handler still running: answered with a failure (409)
      so that WeChat Pay tries again later, in case that handler fails;
    - ``"done"``: handled before: acknowledged again without running the handler.

    ``finish(key, handled=True)`` marks it done; ``handled=False`` forgets it, so a re-sent
    copy runs the handler again. Back it with a database for several processes: a unique
    row per key, inserted as ``in_progress`` by ``claim`` (the insert decides who owns it),
    updated to ``done`` or deleted by ``finish``.
    """

    async def claim(self, key: str) -> Claim: ...

    async def finish(self, key: str, *, handled: bool) -> None: ...


class MemoryDeduplicator:
    """An in-process :class:`Deduplicator` remembering the last ``maxsize`` handled keys.

    A claim still in progress after ``claim_timeout`` seconds (a handler that hangs) is
    given to the next re-sent copy, so WeChat Pay's re-sends are not refused (409) forever.
    Fine for one process; with several workers, back a Deduplicator with shared storage.
    """

    def __init__(self, maxsize: int = 10_000, *, claim_timeout: float = 600.0) -> None:
        if maxsize < 1:
            raise InvalidArgumentError(f"maxsize must be at least 1, got {maxsize}")
        if not claim_timeout > 0:
            raise InvalidArgumentError(f"claim_timeout must be > 0 seconds, got {claim_timeout}")
        self.maxsize = maxsize
        self.claim_timeout = claim_timeout
        self._done: OrderedDict[str, None] = OrderedDict()
        #: Key -> when it was claimed (monotonic clock).
        self._running: dict[str, float] = {}
        # Threads as well as tasks may share one (sync portal, several event loops).
        self._lock = threading.Lock()

    async def claim(self, key: str) -> Claim:
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                return "done"
            now = time.monotonic()
            since = self._running.get(key)
            if since is not None and now - since < self.claim_timeout:
                return "in_progress"
            self._running[key] = now
            return "new"

    async def finish(self, key: str, *, handled: bool) -> None:
        with self._lock:
            self._running.pop(key, None)
            if handled:
                self._done[key] = None
                self._done.move_to_end(key)
                while len(self._done) > self.maxsize:
                    self._done.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is remembered as handled."""
        return key in self._done

    @property
    def size(self) -> int:
        """How many handled keys are remembered (at most ``maxsize``)."""
        return len(self._done)

    def __repr__(self) -> str:
        return f"<MemoryDeduplicator {len(self._done)}/{self.maxsize} done>"


async def finish_shielded(store: Deduplicator, key: str, *, handled: bool) -> None:
    """``store.finish``, completed even when the handler was cancelled."""
    with anyio.CancelScope(shield=True):
        await store.finish(key, handled=handled)
