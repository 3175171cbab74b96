"""A psycopg 3 connection pool made from a DSN (or given), opened on first use.

The stores talk to PostgreSQL with psycopg's blocking API from worker threads
(``anyio.to_thread``): the same code runs under asyncio and trio, and the journal's reading
API (``counts``, ``rows``, ``export``) stays a plain function like the SQLite journal's.
Nothing here imports psycopg before a store first needs a connection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from .._exceptions import InvalidArgumentError
from .base import StoreUnavailableError

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

__all__ = ["PostgresPool", "is_dsn"]

R = TypeVar("R")

_SCHEMES = ("postgresql://", "postgres://")


def is_dsn(value: object) -> bool:
    """A ``postgresql://`` (or ``postgres://``) URL."""
    return isinstance(value, str) and value.startswith(_SCHEMES)


def _import_error(exc: ImportError) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"the PostgreSQL stores need psycopg 3 and psycopg-pool: "
        f"pip install 'wechatpay-chain[postgres]' ({exc.name} is missing)"
    )


def redact(dsn: str) -> str:
    """The DSN without its password, for reprs and messages."""
    scheme, sep, rest = dsn.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at:
        return dsn
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{sep}{user}@{host}" if user else f"{scheme}{sep}{host}"


class PostgresPool:
    """Connections for one store: ``max_size`` at most, autocommit, opened when first used.

    ``target`` is a DSN or a ``psycopg_pool.ConnectionPool`` (shared with the application; its
    connections must be in autocommit mode or the store's statements wait for a commit).
    """

    def __init__(
        self, target: Any, *, max_size: int = 4, timeout: float = 10.0, what: str = "store"
    ) -> None:
        self._own = is_dsn(target)
        if not self._own and not _looks_like_pool(target):
            raise InvalidArgumentError(
                f"{what} needs a postgresql:// DSN or a psycopg_pool.ConnectionPool, "
                f"got {type(target).__name__}"
            )
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise InvalidArgumentError(f"max_size must be an int >= 1, got {max_size!r}")
        self._dsn: str | None = target if self._own else None
        self._pool: ConnectionPool | None = None if self._own else target
        self._max_size = max_size
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise InvalidArgumentError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        self._timeout = float(timeout)
        self._lock = threading.Lock()

    @property
    def label(self) -> str:
        return redact(self._dsn) if self._dsn is not None else "<ConnectionPool>"

    def _opened(self) -> ConnectionPool:
        pool = self._pool
        if pool is not None:
            return pool
        with self._lock:
            if self._pool is None:
                try:
                    from psycopg_pool import ConnectionPool
                except ImportError as exc:
                    raise _import_error(exc) from None
                assert self._dsn is not None
                self._pool = ConnectionPool(
                    self._dsn,
                    min_size=1,
                    max_size=self._max_size,
                    kwargs={"autocommit": True},
                    open=True,
                    name="wechatpay-chain",
                )
                try:
                    # Fail now, with the reason, rather than on each later wait for a connection.
                    self._pool.wait(timeout=self._timeout)
                except Exception as exc:
                    self._pool.close()
                    self._pool = None
                    raise StoreUnavailableError(
                        f"PostgreSQL at {self.label} is unreachable within {self._timeout:g} s "
                        f"({type(exc).__name__})"
                    ) from None
            return self._pool

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        with self._opened().connection(timeout=self._timeout) as conn:
            yield conn

    async def run(self, function: Callable[..., R], *args: Any) -> R:
        """``function(*args)`` in a worker thread (it may take a connection)."""
        return await anyio.to_thread.run_sync(function, *args)

    def close(self) -> None:
        """Close the pool if this object made it (a pool passed in belongs to its owner)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._own:
            pool.close()
        elif pool is not None:
            self._pool = pool


def _looks_like_pool(target: object) -> bool:
    return callable(getattr(target, "connection", None)) and hasattr(target, "max_size")
