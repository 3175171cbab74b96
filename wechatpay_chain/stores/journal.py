"""The batch journal on PostgreSQL: one batch, run by any number of worker processes together.

Every item of a batch is a row (``pending`` when loaded, ``sending`` while a worker holds it,
then ``done`` or ``failed``) carrying its idempotency key and the item itself as JSON, so any
worker can send it. A worker claims rows with ``FOR UPDATE SKIP LOCKED`` and holds them under
a lease that it renews while it lives; the rows of a worker that died are claimed again once
their lease ran out and re-sent *with their recorded key*, which WeChat Pay deduplicates on.
An outcome is written only by the worker that holds the row, so a late answer from a worker
whose lease was taken over never overwrites the new holder's. A send left without an answer
(a read timeout, a dropped connection: its outcome unknown) stays ``sending`` with its error
and no lease: held by nobody, it is sent again, with its key, by the next worker to start.

Every worker may be given the same input: loading is ``INSERT ... ON CONFLICT DO NOTHING``,
so the first to read an item decides its key. A worker given no input helps with what is
loaded. Several batches share the tables, told apart by their name.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import IO, Any, Literal

from .._exceptions import InvalidArgumentError
from ..services.journal import _COLUMNS, JournalRow, Outcome, _row, export_rows
from ._postgres import PostgresPool, is_dsn
from .base import StoreUnavailableError

__all__ = ["PostgresJournal"]

State = Literal["pending", "sending", "done", "failed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS wechatpay_batch_runs (
    run bigserial PRIMARY KEY,
    batch text NOT NULL,
    worker text NOT NULL,
    started timestamptz NOT NULL DEFAULT now(),
    finished timestamptz
);
CREATE TABLE IF NOT EXISTS wechatpay_batch_items (
    batch text NOT NULL,
    seq bigserial,
    item_id text NOT NULL,
    key text NOT NULL,
    item text NOT NULL,
    state text NOT NULL CHECK (state IN ('pending', 'sending', 'done', 'failed')),
    run bigint,
    lease_until timestamptz,
    sends integer NOT NULL DEFAULT 0,
    status integer,
    request_id text,
    error text,
    result text,
    updated double precision NOT NULL,
    changed timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch, item_id),
    CONSTRAINT wechatpay_batch_items_key UNIQUE (batch, key)
);
-- Only the rows a claim may take: an index over every row would be written on every update.
CREATE INDEX IF NOT EXISTS wechatpay_batch_items_open
    ON wechatpay_batch_items (batch, seq) WHERE state IN ('pending', 'sending', 'failed');
"""
# Serialises the schema creation of workers starting together (CREATE ... IF NOT EXISTS races).
_SCHEMA_LOCK = 0x77656368617479

_LOAD = """
INSERT INTO wechatpay_batch_items (batch, item_id, key, item, state, sends, updated)
SELECT %(batch)s, u.item_id, u.key, u.item, 'pending', 0, %(now)s
FROM unnest(%(ids)s::text[], %(keys)s::text[], %(items)s::text[]) WITH ORDINALITY
    AS u(item_id, key, item, n)
ORDER BY u.n
ON CONFLICT (batch, item_id) DO NOTHING
"""
_CLAIM = """
WITH picked AS (
    SELECT item_id FROM wechatpay_batch_items
    WHERE batch = %(batch)s AND (
        state = 'pending'
        OR (state = 'sending' AND lease_until < now())
        OR (state = 'sending' AND lease_until IS NULL AND changed < %(started)s)
        OR (%(retry)s AND state = 'failed' AND changed < %(started)s))
    ORDER BY seq
    LIMIT %(n)s
    FOR UPDATE SKIP LOCKED
)
UPDATE wechatpay_batch_items AS i
SET state = 'sending', run = %(run)s, sends = i.sends + 1, updated = %(now)s, changed = now(),
    lease_until = now() + %(lease)s * interval '1 second'
FROM picked
WHERE i.batch = %(batch)s AND i.item_id = picked.item_id
RETURNING i.item_id, i.key, i.item, i.sends
"""
_RECORD = """
UPDATE wechatpay_batch_items AS i
SET state = u.state, status = u.status, request_id = u.request_id, result = u.result,
    error = u.error, updated = u.updated, changed = now(), lease_until = NULL
FROM unnest(%(states)s::text[], %(statuses)s::integer[], %(request_ids)s::text[],
            %(results)s::text[], %(errors)s::text[], %(updated)s::float8[], %(ids)s::text[])
    AS u(state, status, request_id, result, error, updated, item_id)
WHERE i.batch = %(batch)s AND i.item_id = u.item_id AND i.run = %(run)s AND i.state = 'sending'
"""
_RENEW = """
UPDATE wechatpay_batch_items SET lease_until = now() + %(lease)s * interval '1 second'
WHERE batch = %(batch)s AND run = %(run)s AND state = 'sending' AND lease_until IS NOT NULL
"""
_OPEN = """
SELECT count(*) FILTER (WHERE state = 'pending'),
       count(*) FILTER (WHERE state = 'sending' AND run <> %(run)s AND lease_until IS NOT NULL),
       extract(epoch FROM min(lease_until) FILTER (WHERE run <> %(run)s) - now())
FROM wechatpay_batch_items
WHERE batch = %(batch)s AND state IN ('pending', 'sending')
"""
_SELECT = ", ".join("coalesce(run, 0)" if c == "run" else c for c in _COLUMNS)


class PostgresJournal:
    """The journal of batch ``batch`` in the PostgreSQL database at ``target``.

    ``target`` is a ``postgresql://`` DSN (a ``#name`` fragment names the batch) or a
    ``psycopg_pool.ConnectionPool``; ``timeout`` bounds a wait for a connection. ``lease`` is
    how many seconds a worker's claim outlives its last sign of life: a dead worker's items
    are taken over after it. Pass it (or the DSN) as ``journal=`` to ``client.batch``;
    several processes doing so run the batch together.
    """

    def __init__(
        self,
        target: Any,
        *,
        batch: str | None = None,
        lease: float = 30.0,
        max_size: int = 4,
        timeout: float = 10.0,
    ) -> None:
        if is_dsn(target) and "#" in target:
            target, _, fragment = target.partition("#")
            batch = batch or fragment
        batch = "default" if batch is None else batch
        if not isinstance(batch, str) or not batch:
            raise InvalidArgumentError(f"batch must be a non-empty str, got {batch!r}")
        if isinstance(lease, bool) or not isinstance(lease, int | float) or not lease > 0:
            raise InvalidArgumentError(f"lease must be a number of seconds > 0, got {lease!r}")
        self.batch = batch
        self.lease = float(lease)
        self._pool = PostgresPool(
            target, max_size=max_size, timeout=timeout, what="PostgresJournal"
        )
        self._ready = False
        self._lock = threading.Lock()

    in_memory = False

    def __repr__(self) -> str:
        return f"<PostgresJournal {self._pool.label} batch={self.batch!r}>"

    # --- lifecycle ----------------------------------------------------------------------
    def open(self) -> PostgresJournal:
        """Create the tables if needed (blocking)."""
        if self._ready:
            return self
        with self._lock:
            if self._ready:
                return self
            try:
                with self._pool.connection() as conn, conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement.encode())
            except StoreUnavailableError:
                raise
            except Exception as exc:
                raise _unusable(self, exc) from None
            self._ready = True
        return self

    def close(self) -> None:
        """Close the connections this journal opened."""
        self._pool.close()

    def __enter__(self) -> PostgresJournal:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def pool(self) -> PostgresPool:
        return self._pool

    def _execute(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        self.open()
        with self._pool.connection() as conn:
            cursor = conn.execute(sql.encode(), params)
            return cursor.fetchall() if cursor.description is not None else []

    # --- a worker's side -------------------------------------------------------------------
    def start_run(self, worker: str) -> tuple[int, Any]:
        """Register a worker; its run number and the database's time at its start."""
        rows = self._execute(
            "INSERT INTO wechatpay_batch_runs (batch, worker) VALUES (%(batch)s, %(worker)s) "
            "RETURNING run, started",
            {"batch": self.batch, "worker": worker},
        )
        return int(rows[0][0]), rows[0][1]

    def finish_run(self, run: int) -> None:
        self._execute(
            "UPDATE wechatpay_batch_runs SET finished = now() WHERE run = %(run)s", {"run": run}
        )

    def load(self, entries: Sequence[tuple[str, str, str]]) -> int:
        """Add ``(item_id, key, item_json)`` rows not in the batch yet; how many were new."""
        if not entries:
            return 0
        ids, keys, items = (list(column) for column in zip(*entries, strict=True))
        params = {"batch": self.batch, "now": time.time(), "ids": ids, "keys": keys, "items": items}
        self.open()
        try:
            with self._pool.connection() as conn:
                return conn.execute(_LOAD.encode(), params).rowcount
        except Exception as exc:
            if _is_key_clash(exc):
                raise InvalidArgumentError(
                    "key= gave two items the same idempotency key: WeChat Pay would answer the "
                    "second with the first one's result"
                ) from None
            raise

    def claim(
        self, run: int, count: int, retry_failed: bool, started: Any
    ) -> list[tuple[str, str, str, int]]:
        """Take up to ``count`` claimable items: ``(item_id, key, item_json, sends)``."""
        params = {
            "batch": self.batch,
            "run": run,
            "n": count,
            "retry": retry_failed,
            "started": started,
            "now": time.time(),
            "lease": self.lease,
        }
        rows = self._execute(_CLAIM, params)
        return [(r[0], r[1], r[2], int(r[3])) for r in rows]

    def record(self, run: int, outcomes: Sequence[Outcome]) -> None:
        """Store answered items, those still held by ``run`` (see ``Outcome``)."""
        if not outcomes:
            return
        states, statuses, request_ids, results, errors, updated, ids = (
            list(c) for c in zip(*outcomes, strict=True)
        )
        self._execute(
            _RECORD,
            {
                "batch": self.batch,
                "run": run,
                "states": states,
                "statuses": statuses,
                "request_ids": request_ids,
                "results": results,
                "errors": errors,
                "updated": updated,
                "ids": ids,
            },
        )

    def renew(self, run: int) -> None:
        """Extend the lease of every item ``run`` holds."""
        self._execute(_RENEW, {"batch": self.batch, "run": run, "lease": self.lease})

    def release(self, run: int) -> int:
        """Hand back what ``run`` holds unanswered (a stopping worker): claimable at once."""
        self.open()
        with self._pool.connection() as conn:
            sql = (
                "UPDATE wechatpay_batch_items SET state = 'pending', lease_until = NULL "
                "WHERE batch = %(batch)s AND run = %(run)s AND state = 'sending' "
                "AND lease_until IS NOT NULL"
            )
            return conn.execute(sql.encode(), {"batch": self.batch, "run": run}).rowcount

    def open_items(self, run: int) -> tuple[int, int, float | None]:
        """Pending items, items other runs hold, and seconds until their first lease ends."""
        row = self._execute(_OPEN, {"batch": self.batch, "run": run})[0]
        return int(row[0]), int(row[1]), None if row[2] is None else float(row[2])

    # --- reading ---------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Items per state in the whole batch, e.g. ``{"done": 9990, "failed": 10}``."""
        rows = self._execute(
            "SELECT state, count(*) FROM wechatpay_batch_items WHERE batch = %(batch)s "
            "GROUP BY state",
            {"batch": self.batch},
        )
        return {state: int(n) for state, n in rows}

    def rows(self, state: State | None = None) -> Iterator[JournalRow]:
        """Every item of the batch in the order it was loaded, or those in ``state``."""
        sql = f"SELECT {_SELECT} FROM wechatpay_batch_items WHERE batch = %(batch)s"  # noqa: S608 - fixed column names
        if state is not None:
            sql += " AND state = %(state)s"
        sql += " ORDER BY seq"
        self.open()
        with self._pool.connection() as conn, conn.cursor(name="wechatpay_rows") as cursor:
            # A server-side cursor: a million-item batch is exported without loading it whole.
            with conn.transaction():
                cursor.execute(sql.encode(), {"batch": self.batch, "state": state})
                while True:
                    chunk = cursor.fetchmany(2000)
                    if not chunk:
                        break
                    for row in chunk:
                        yield _row(tuple(row))

    def get(self, item_id: str) -> JournalRow | None:
        """The item ``item_id``, or None when the batch has never seen it."""
        found = self._execute(
            f"SELECT {_SELECT} FROM wechatpay_batch_items "  # noqa: S608 - fixed column names
            "WHERE batch = %(batch)s AND item_id = %(id)s",
            {"batch": self.batch, "id": item_id},
        )
        return _row(tuple(found[0])) if found else None

    def export(
        self,
        target: str | os.PathLike[str] | IO[str],
        *,
        format: Literal["csv", "jsonl"] | None = None,
        state: State | None = None,
    ) -> int:
        """Write the batch's items (or those in ``state``) as CSV or JSON Lines."""
        return export_rows(self.rows(state), target, format)


def _is_key_clash(exc: BaseException) -> bool:
    return getattr(getattr(exc, "diag", None), "constraint_name", None) == (
        "wechatpay_batch_items_key"
    )


def _unusable(journal: PostgresJournal, exc: Exception) -> InvalidArgumentError:
    # psycopg's messages name the host and the database, never the password.
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return InvalidArgumentError(f"journal {journal!r} cannot be used: {reason}")


def shared_journal(journal: object) -> PostgresJournal | None:
    """``journal`` as a PostgresJournal when it is one or a ``postgresql://`` DSN."""
    if isinstance(journal, PostgresJournal):
        return journal
    if is_dsn(journal):
        return PostgresJournal(journal)
    return None
