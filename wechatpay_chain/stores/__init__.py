"""Stores shared by several processes and machines: PostgreSQL and Redis.

- :class:`PostgresJournal`: a batch journal that several worker processes run one batch on;
- :class:`PostgresDeduplicator`, :class:`RedisDeduplicator`: notification de-duplication;
- :class:`RedisRateStore`: the ``store=`` of a ``RateLimit`` pacing every process together.

Their drivers (``pip install 'wechatpay-chain[postgres]'`` or ``[redis]``) are imported when a
store first connects, never by ``import wechatpay_chain``.
"""

from .base import StoreUnavailableError
from .dedup import PostgresDeduplicator, RedisDeduplicator
from .journal import PostgresJournal
from .ratelimit import RedisRateStore

__all__ = [
    "PostgresDeduplicator",
    "PostgresJournal",
    "RedisDeduplicator",
    "RedisRateStore",
    "StoreUnavailableError",
]
