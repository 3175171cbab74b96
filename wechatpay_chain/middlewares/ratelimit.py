"""Client-side rate limits: requests per second per endpoint, and calls in flight.

Rates are kept in thread-safe token buckets, so one ``RateLimit`` paces every task, event
loop and thread that uses it (the sync ``*_sync`` verbs included). The concurrency limit is
a semaphore per event loop, like the client's connection pools: two event loops using one
client each get ``concurrency`` slots.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Protocol

import anyio
import httpx

from .._exceptions import InvalidArgumentError
from ..transport.registry import loop_key
from .pipeline import Handler, Request, Sleep

__all__ = ["RateLimit"]

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class RateStore(Protocol):
    """Keeps buckets outside the process (``wechatpay_chain.stores.RedisRateStore``).

    ``wait`` reserves the next slot of bucket ``name`` and returns the seconds to wait; when
    the store is unreachable it returns ``local()`` (this process's own bucket) or raises.
    """

    async def wait(
        self, name: str, interval: float, tolerance: float, local: Callable[[], float]
    ) -> float: ...


class _Bucket:
    """A token bucket as a generic cell rate algorithm: one reservation per request."""

    __slots__ = ("_lock", "_tat", "interval", "name", "tolerance")

    def __init__(self, rate: float, burst: int, name: str = "") -> None:
        self.name = name
        self.interval = 1.0 / rate
        self.tolerance = (burst - 1) * self.interval
        self._tat = float("-inf")  # theoretical arrival time of the next request
        self._lock = threading.Lock()

    def reserve(self, now: float) -> float:
        """Take the next slot; the seconds to wait before using it."""
        with self._lock:
            tat = self._tat if self._tat > now else now
            start = tat - self.tolerance
            if start < now:
                start = now
            self._tat = tat + self.interval
        return start - now


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidArgumentError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


class RateLimit:
    """``limiter``: paces requests per endpoint and bounds the calls in flight.

    ``rates`` maps an endpoint to requests per second: ``"v3/pay/transactions/native"``
    (every method of that template shares one budget) or ``"POST v3/…"`` (that method only).
    ``default`` paces every other endpoint, each on its own budget. ``burst`` requests may go
    at once before the pace applies. ``concurrency`` bounds the calls in flight per event loop.
    ``store`` (e.g. ``stores.RedisRateStore``) shares the budgets with every process using it.

    A call first takes a concurrency slot, then waits for its turn at the endpoint's pace and
    is sent right away: the pace holds however slow or fast the answers are.
    """

    __slots__ = (
        "_buckets",
        "_burst",
        "_clock",
        "_concurrency",
        "_default",
        "_last",
        "_resolved",
        "_semaphores",
        "_sleep",
        "_store",
    )

    def __init__(
        self,
        rates: Mapping[str, float] | None = None,
        *,
        default: float | None = None,
        concurrency: int | None = None,
        burst: int = 1,
        clock: Callable[[], float] | None = None,
        sleep: Sleep | None = None,
        store: RateStore | None = None,
    ) -> None:
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise InvalidArgumentError(f"burst must be an int >= 1, got {burst!r}")
        if concurrency is not None and (
            isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
        ):
            raise InvalidArgumentError(f"concurrency must be an int >= 1, got {concurrency!r}")
        self._burst = burst
        self._buckets: dict[str, _Bucket] = {}
        for key, rate in (rates or {}).items():
            name = self._endpoint(key)
            self._buckets[name] = _Bucket(_positive(f"rates[{key!r}]", rate), burst, name)
        self._default = None if default is None else _positive("default", default)
        self._concurrency = concurrency
        self._clock = clock or time.monotonic
        self._sleep: Sleep = sleep or anyio.sleep
        if store is not None and not callable(getattr(store, "wait", None)):
            raise InvalidArgumentError(
                f"store must be a RateStore (e.g. RedisRateStore), got {type(store).__name__}"
            )
        #: Shares the buckets with other processes (None: this process alone).
        self._store = store
        #: (method, template) -> its bucket (None: not paced); filled on first use.
        self._resolved: dict[tuple[str, str], _Bucket | None] = {}
        # Weak: an entry goes with its loop (asyncio) or its run (trio's token), so a
        # process running many short loops keeps none of them.
        self._semaphores: weakref.WeakKeyDictionary[object, anyio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._last: tuple[object, anyio.Semaphore] | None = None

    @staticmethod
    def _endpoint(key: object) -> str:
        if not isinstance(key, str) or not key.strip():
            raise InvalidArgumentError(f"rates keys are templates, got {key!r}")
        method, _, template = key.partition(" ")
        if template and method in _METHODS:
            return f"{method} {template.strip().lstrip('/')}"
        if " " in key.strip():
            raise InvalidArgumentError(
                f"rates key {key!r} must be 'TEMPLATE' or 'METHOD TEMPLATE' (GET, POST, ...)"
            )
        return key.strip().lstrip("/")

    def __repr__(self) -> str:
        return (
            f"<RateLimit endpoints={sorted(self._buckets)} default={self._default} "
            f"concurrency={self._concurrency}>"
        )

    @property
    def concurrency(self) -> int | None:
        return self._concurrency

    def _bucket(self, method: str, template: str) -> _Bucket | None:
        key = (method, template)
        try:
            return self._resolved[key]
        except KeyError:
            pass
        bucket = self._buckets.get(f"{method} {template}") or self._buckets.get(template)
        if bucket is None and self._default is not None:
            bucket = _Bucket(self._default, self._burst, f"{method} {template}")
        return self._resolved.setdefault(key, bucket)

    def _semaphore(self, limit: int) -> anyio.Semaphore:
        key = loop_key()
        last = self._last
        if last is not None and last[0] is key:
            return last[1]
        semaphore = self._semaphores.get(key)
        if semaphore is None:
            semaphore = self._semaphores.setdefault(key, anyio.Semaphore(limit, fast_acquire=True))
        self._last = (key, semaphore)
        return semaphore

    async def pace(self, method: str, template: str) -> None:
        """Wait for the next turn of ``method template`` (no concurrency slot taken)."""
        bucket = self._bucket(method, template)
        if bucket is not None:
            store = self._store
            if store is None:
                wait = bucket.reserve(self._clock())
            else:
                wait = await store.wait(
                    bucket.name,
                    bucket.interval,
                    bucket.tolerance,
                    lambda: bucket.reserve(self._clock()),
                )
            if wait > 0:
                await self._sleep(wait)

    async def __call__(self, request: Request, call_next: Handler) -> httpx.Response:
        limit = self._concurrency
        if limit is None:
            await self.pace(request.method, request.template)
            return await call_next(request)
        async with self._semaphore(limit):
            await self.pace(request.method, request.template)
            return await call_next(request)
