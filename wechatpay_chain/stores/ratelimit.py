"""A rate limit shared by every process and machine: one GCRA cell per endpoint on Redis.

``RateLimit(rates, store=RedisRateStore(url, prefix=f"wechatpay:rate:{mchid}:"))`` keeps the
``RateLimit`` API; each request's reservation is one Lua script run atomically on Redis against
Redis's own clock, so every process using the same key shares one budget. When Redis cannot
be reached, ``fallback="local"`` (the default) paces with this process's own bucket and logs
it (each process then spends the whole budget: the total rate may be exceeded until Redis is
back); ``fallback="closed"`` raises :class:`StoreUnavailableError` instead of sending.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

from .._exceptions import InvalidArgumentError
from ._redis import RedisConnection, unreachable
from .base import StoreUnavailableError

__all__ = ["RedisRateStore", "StoreUnavailableError"]

logger = logging.getLogger("wechatpay_chain.ratelimit")

_LOG_EVERY = 30.0  # seconds between two "Redis unreachable" warnings

# Times in microseconds (integers in a double: exact well past the year 2200). The cell's
# "theoretical arrival time" is stored as an integer string: Lua's tostring would round it.
_RESERVE = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local start = tat - tolerance
if start < now then start = now end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', next_tat),
           'PX', math.ceil((next_tat - now) / 1000) + 1000)
return start - now
"""


class RedisRateStore:
    """Where a ``RateLimit`` keeps its buckets so that every process shares them.

    ``prefix`` names the budget: processes with the same prefix (and endpoint) share one. Put
    the merchant id in it, since WeChat Pay's limits are per merchant. ``timeout`` bounds each
    reservation's round trip; past it Redis counts as unreachable.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "wechatpay:rate:",
        fallback: Literal["local", "closed"] = "local",
        timeout: float = 0.5,
    ) -> None:
        if fallback not in ("local", "closed"):
            raise InvalidArgumentError(f"fallback must be 'local' or 'closed', got {fallback!r}")
        if not isinstance(prefix, str):
            raise InvalidArgumentError(f"prefix must be a str, got {type(prefix).__name__}")
        self.prefix = prefix
        self.fallback = fallback
        self._redis = RedisConnection(url, timeout=timeout, what="RedisRateStore")
        self._warned = float("-inf")

    def __repr__(self) -> str:
        return (
            f"<RedisRateStore {self._redis.label} prefix={self.prefix!r} fallback={self.fallback}>"
        )

    async def reserve(self, name: str, interval: float, tolerance: float) -> float:
        """Take the next slot of bucket ``name`` on Redis; the seconds to wait before using it."""
        micros = await self._redis.script(
            _RESERVE,
            [self.prefix + name],
            [max(1, round(interval * 1_000_000)), max(0, round(tolerance * 1_000_000))],
        )
        return int(micros) / 1_000_000

    async def wait(
        self, name: str, interval: float, tolerance: float, local: Callable[[], float]
    ) -> float:
        """``reserve``, or when Redis is unreachable ``local()`` (or an error, fail-closed)."""
        try:
            return await self.reserve(name, interval, tolerance)
        except Exception as exc:
            if not unreachable(exc):
                raise
            if self.fallback == "closed":
                raise StoreUnavailableError(
                    f"the shared rate limit at {self._redis.label} is unreachable "
                    f"({type(exc).__name__}); fallback='closed': not sent"
                ) from None
            now = time.monotonic()
            if now - self._warned >= _LOG_EVERY:
                self._warned = now
                logger.warning(
                    "shared rate limit at %s unreachable (%s): pacing this process alone",
                    self._redis.label,
                    type(exc).__name__,
                )
            return local()

    async def aclose(self) -> None:
        await self._redis.aclose()
