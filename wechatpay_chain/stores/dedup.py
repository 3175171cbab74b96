"""Notification de-duplication shared by every worker: on PostgreSQL or on Redis.

Both follow the :class:`~wechatpay_chain.notifications.Deduplicator` contract with two expiries:

- ``in_progress_ttl``: a claim not finished by then (the handler hangs, the worker died) lapses,
  and the next re-send runs the handler again instead of being answered 409 forever;
- ``done_ttl``: how long a handled notification is remembered (WeChat Pay stops re-sending
  after about a day; the default keeps two).

A claim carries a random token kept by the process that made it, so a handler that failed
after its claim lapsed and was taken over never releases the new holder's claim.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any

from .._exceptions import InvalidArgumentError
from ._postgres import PostgresPool
from ._redis import RedisConnection

if TYPE_CHECKING:
    from ..notifications.dedup import Claim

__all__ = ["PostgresDeduplicator", "RedisDeduplicator"]

_DAY = 86_400.0
_SCHEMA_LOCK = 0x77656368617479 + 1
_PURGE_EVERY = 60.0  # seconds between deletions of lapsed rows (PostgreSQL keeps them otherwise)


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidArgumentError(f"{name} must be a number of seconds > 0, got {value!r}")
    return float(value)


class _Tokens:
    """This process's claims: key -> token."""

    def __init__(self) -> None:
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    def new(self, key: str) -> str:
        token = secrets.token_hex(8)
        with self._lock:
            self._tokens[key] = token
        return token

    def pop(self, key: str) -> str | None:
        with self._lock:
            return self._tokens.pop(key, None)

    def forget(self, key: str, token: str) -> None:
        with self._lock:
            if self._tokens.get(key) == token:
                del self._tokens[key]


_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PostgresDeduplicator:
    """A :class:`Deduplicator` keeping one row per notification in ``table`` on PostgreSQL.

    ``target`` is a ``postgresql://`` DSN or a ``psycopg_pool.ConnectionPool`` (autocommit).
    The insert decides who owns a notification: exactly one worker gets ``"new"``.
    """

    def __init__(
        self,
        target: Any,
        *,
        table: str = "wechatpay_notifications",
        in_progress_ttl: float = 60.0,
        done_ttl: float = 2 * _DAY,
        max_size: int = 4,
        timeout: float = 10.0,
    ) -> None:
        if not isinstance(table, str) or not _IDENTIFIER.fullmatch(table):
            raise InvalidArgumentError(f"table must be a lower-case SQL identifier, got {table!r}")
        self.table = table
        self.in_progress_ttl = _seconds("in_progress_ttl", in_progress_ttl)
        self.done_ttl = _seconds("done_ttl", done_ttl)
        self._pool = PostgresPool(
            target, max_size=max_size, timeout=timeout, what="PostgresDeduplicator"
        )
        self._tokens = _Tokens()
        self._ready = False
        self._purged = 0.0
        t = table
        self._sql_schema = (
            f"CREATE TABLE IF NOT EXISTS {t} (key text PRIMARY KEY, state text NOT NULL, "
            "token text, expires timestamptz NOT NULL)",
            # The purge finds lapsed rows without reading the whole table.
            f"CREATE INDEX IF NOT EXISTS {t}_expires ON {t} (expires)",
        )
        self._sql_claim = (
            f"WITH taken AS (INSERT INTO {t} AS n (key, state, token, expires) "  # noqa: S608 - table is a checked identifier
            "VALUES (%(key)s, 'in_progress', %(token)s, now() + %(ttl)s * interval '1 second') "
            "ON CONFLICT (key) DO UPDATE SET state = 'in_progress', token = excluded.token, "
            "expires = excluded.expires WHERE n.expires < now() RETURNING 1) "
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM taken) THEN 'new' "
            f"ELSE (SELECT state FROM {t} WHERE key = %(key)s) END"
        )
        self._sql_done = (
            f"INSERT INTO {t} AS n (key, state, token, expires) "  # noqa: S608
            "VALUES (%(key)s, 'done', NULL, now() + %(ttl)s * interval '1 second') "
            "ON CONFLICT (key) DO UPDATE SET state = 'done', token = NULL, "
            "expires = excluded.expires"
        )
        self._sql_forget = f"DELETE FROM {t} WHERE key = %(key)s AND token = %(token)s"  # noqa: S608
        self._sql_purge = f"DELETE FROM {t} WHERE expires < now() - interval '1 minute'"  # noqa: S608

    def __repr__(self) -> str:
        return f"<PostgresDeduplicator {self._pool.label} table={self.table!r}>"

    def _run(self, sql: str, params: dict[str, Any]) -> Any:
        with self._pool.connection() as conn:
            if not self._ready:
                # Workers starting together: CREATE TABLE IF NOT EXISTS alone races.
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    for statement in self._sql_schema:
                        conn.execute(statement.encode())
                self._ready = True
            now = time.monotonic()
            if now - self._purged > _PURGE_EVERY:
                self._purged = now
                conn.execute(self._sql_purge.encode())
            cursor = conn.execute(sql.encode(), params)
            return cursor.fetchone() if cursor.description is not None else None

    async def claim(self, key: str) -> Claim:
        token = self._tokens.new(key)
        params = {"key": key, "token": token, "ttl": self.in_progress_ttl}
        try:
            row = await self._pool.run(self._run, self._sql_claim, params)
        except BaseException:
            self._tokens.forget(key, token)
            raise
        if row is not None and row[0] == "new":
            return "new"
        self._tokens.forget(key, token)
        # No row: it lapsed between the insert and the look; the next re-send settles it.
        return "done" if row is not None and row[0] == "done" else "in_progress"

    async def finish(self, key: str, *, handled: bool) -> None:
        token = self._tokens.pop(key)
        if handled:
            await self._pool.run(self._run, self._sql_done, {"key": key, "ttl": self.done_ttl})
        elif token is not None:
            await self._pool.run(self._run, self._sql_forget, {"key": key, "token": token})

    async def state(self, key: str) -> str | None:
        """``"in_progress"``, ``"done"``, or None (unknown or lapsed)."""
        sql = f"SELECT state FROM {self.table} WHERE key = %(key)s AND expires >= now()"  # noqa: S608
        row = await self._pool.run(self._run, sql, {"key": key})
        return None if row is None else str(row[0])

    def close(self) -> None:
        self._pool.close()


_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 'new' end
local state = redis.call('GET', KEYS[1])
if state == 'done' then return 'done' end
return 'in_progress'
"""
_FORGET = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisDeduplicator:
    """A :class:`Deduplicator` keeping one key per notification on Redis, expiring by itself.

    ``url`` is a ``redis://`` (``rediss://``, ``unix://``) URL; ``prefix`` keeps these keys
    apart from others (put the merchant id in it when several merchants share one server).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "wechatpay:notification:",
        in_progress_ttl: float = 60.0,
        done_ttl: float = 2 * _DAY,
        timeout: float = 5.0,
    ) -> None:
        if not isinstance(prefix, str):
            raise InvalidArgumentError(f"prefix must be a str, got {type(prefix).__name__}")
        self.prefix = prefix
        self.in_progress_ttl = _seconds("in_progress_ttl", in_progress_ttl)
        self.done_ttl = _seconds("done_ttl", done_ttl)
        self._redis = RedisConnection(url, timeout=timeout, what="RedisDeduplicator")
        self._tokens = _Tokens()

    def __repr__(self) -> str:
        return f"<RedisDeduplicator {self._redis.label} prefix={self.prefix!r}>"

    async def claim(self, key: str) -> Claim:
        token = "running:" + self._tokens.new(key)
        ttl = max(1, int(self.in_progress_ttl * 1000))
        try:
            answer = await self._redis.script(_CLAIM, [self.prefix + key], [token, ttl])
        except BaseException:
            self._tokens.forget(key, token[8:])
            raise
        answer = answer.decode() if isinstance(answer, bytes) else answer
        if answer == "new":
            return "new"
        self._tokens.forget(key, token[8:])
        return "done" if answer == "done" else "in_progress"

    async def finish(self, key: str, *, handled: bool) -> None:
        token = self._tokens.pop(key)
        if handled:
            ttl = max(1, int(self.done_ttl * 1000))
            await self._redis.command("SET", self.prefix + key, "done", "PX", ttl)
        elif token is not None:
            await self._redis.script(_FORGET, [self.prefix + key], ["running:" + token])

    async def state(self, key: str) -> str | None:
        """``"in_progress"``, ``"done"``, or None (unknown or lapsed)."""
        value = await self._redis.command("GET", self.prefix + key)
        if value is None:
            return None
        value = value.decode() if isinstance(value, bytes) else value
        return "done" if value == "done" else "in_progress"

    async def aclose(self) -> None:
        await self._redis.aclose()
