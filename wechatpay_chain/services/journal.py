"""The batch journal: an SQLite file with one row per item, written before and after it is sent.

An item is recorded as ``sending`` with its idempotency key *before* its request leaves, in a
committed transaction; its outcome (``done`` or ``failed``) is recorded afterwards, a few
hundred at a time. After a crash the ``sending`` rows are exactly the items that may have
reached WeChat Pay without an answer on record: a re-run sends them again with the same key,
which WeChat Pay deduplicates on. An outcome lost in the crash only causes such a resend.

One process at a time: the file is locked while a batch runs. Commits survive a crash of the
process (WAL, ``synchronous=NORMAL``); ``durable=True`` also survives power loss, slower.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

from .._exceptions import InvalidArgumentError

__all__ = ["Journal", "JournalRow"]

_FORMAT = "wechatpay-chain-journal/1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (run INTEGER PRIMARY KEY, started REAL NOT NULL, finished REAL);
CREATE TABLE IF NOT EXISTS items (
    item_id TEXT NOT NULL UNIQUE,
    key TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('sending', 'done', 'failed')),
    run INTEGER NOT NULL,
    sends INTEGER NOT NULL,
    status INTEGER,
    request_id TEXT,
    error TEXT,
    result TEXT,
    updated REAL NOT NULL
);
"""
_COLUMNS = (
    "item_id",
    "key",
    "state",
    "run",
    "sends",
    "status",
    "request_id",
    "error",
    "result",
    "updated",
)
_IN_CHUNK = 500  # bound on SQL variables per SELECT ... IN (...)

State = Literal["sending", "done", "failed"]
#: What a run does with an item: send it (new), resend it (with its recorded key), skip it
#: (done earlier), skip_failed (failed earlier, and failures are not retried), or duplicate.
Action = Literal["send", "resend", "skip", "skip_failed", "duplicate"]
#: (state, status, request_id, result_json, error, updated, item_id): what ``record`` takes.
Outcome = tuple[str, "int | None", "str | None", "str | None", "str | None", float, str]


@dataclass(frozen=True, slots=True)
class JournalRow:
    """One item as the journal knows it."""

    item_id: str
    #: The idempotency key it is sent with (the ``out_…_no`` of its request).
    key: str
    state: str
    #: The run that last sent or claimed it, and how many runs sent it.
    run: int
    sends: int
    status: int | None
    request_id: str | None
    error: str | None
    #: The answer's JSON (or the send function's JSON-able return value).
    result: Any
    updated: float


class Journal:
    """An SQLite journal of batch items at ``path`` (``":memory:"`` keeps nothing)."""

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = False) -> None:
        if not isinstance(path, str | os.PathLike):
            raise InvalidArgumentError(
                f"journal must be a path or a Journal, got {type(path).__name__}"
            )
        self.path = os.fspath(path)
        if not self.path:
            raise InvalidArgumentError("journal path must not be empty")
        self.durable = durable
        self._db: sqlite3.Connection | None = None

    @property
    def in_memory(self) -> bool:
        return self.path == ":memory:"

    def __repr__(self) -> str:
        return f"<Journal {self.path!r}>"

    # --- lifecycle ----------------------------------------------------------------------
    def open(self) -> Journal:
        """Open (creating it if needed) and lock the file for this process."""
        if self._db is not None:
            return self
        if not self.in_memory:
            _create_private(self.path)
        try:
            db = sqlite3.connect(
                self.path, timeout=0.25, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise InvalidArgumentError(f"journal {self.path!r} cannot be opened: {exc}") from None
        try:
            if not self.in_memory:
                db.execute("PRAGMA locking_mode=EXCLUSIVE")
                db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
            db.execute("BEGIN IMMEDIATE")
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables and "meta" not in tables:
                raise InvalidArgumentError(
                    f"{self.path!r} is an SQLite file but not a wechatpay-chain journal"
                )
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            found = db.execute("SELECT value FROM meta WHERE name='format'").fetchone()
            if found is None:
                db.execute("INSERT INTO meta VALUES ('format', ?)", (_FORMAT,))
            elif found[0] != _FORMAT:
                raise InvalidArgumentError(
                    f"journal {self.path!r} has format {found[0]!r}; this version reads {_FORMAT!r}"
                )
            db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            db.close()
            if "locked" in str(exc):
                raise InvalidArgumentError(
                    f"journal {self.path!r} is in use by another batch (one process at a time)"
                ) from None
            raise InvalidArgumentError(f"journal {self.path!r} cannot be used: {exc}") from None
        except sqlite3.DatabaseError as exc:
            db.close()
            raise InvalidArgumentError(f"journal {self.path!r} cannot be used: {exc}") from None
        except BaseException:
            db.close()
            raise
        self._db = db
        return self

    def close(self) -> None:
        """Close the file (an in-memory journal is then gone)."""
        db, self._db = self._db, None
        if db is not None:
            db.close()

    def __enter__(self) -> Journal:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.open()
        assert self._db is not None
        return self._db

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The open connection, or one opened for this read and closed (unlocked) after."""
        if self._db is not None:
            yield self._db
            return
        db = self._conn()
        try:
            yield db
        finally:
            self.close()

    # --- the batch's side ----------------------------------------------------------------
    def start_run(self) -> int:
        db = self._conn()
        cursor = db.execute("INSERT INTO runs (started) VALUES (?)", (time.time(),))
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def finish_run(self, run: int) -> None:
        self._conn().execute("UPDATE runs SET finished=? WHERE run=?", (time.time(), run))

    def claim(
        self,
        run: int,
        chunk: Sequence[tuple[str, Any]],
        make_key: Callable[[Any], str],
        retry_failed: bool = True,
    ) -> list[tuple[Action, str]]:
        """Decide each ``(item_id, item)`` of ``chunk``; what is to be sent is committed first."""
        db = self._conn()
        known: dict[str, tuple[str, str, int]] = {}
        unique = list(dict.fromkeys(item_id for item_id, _ in chunk))
        decisions: list[tuple[Action, str]] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for i in range(0, len(unique), _IN_CHUNK):
                part = unique[i : i + _IN_CHUNK]
                marks = ",".join("?" * len(part))
                for item_id, key, state, last in db.execute(
                    f"SELECT item_id, key, state, run FROM items WHERE item_id IN ({marks})",  # noqa: S608 - only '?' marks are interpolated
                    part,
                ):
                    known[item_id] = (key, state, last)
            now = time.time()
            new: list[tuple[str, str, int, float]] = []
            again: list[tuple[int, float, str]] = []
            seen: set[str] = set()
            for item_id, item in chunk:
                row = known.get(item_id)
                if item_id in seen or (row is not None and row[2] == run):
                    decisions.append(("duplicate", row[0] if row else ""))
                    continue
                seen.add(item_id)
                if row is None:
                    key = make_key(item)
                    if not isinstance(key, str) or not key:
                        raise InvalidArgumentError(
                            f"key= must return a non-empty str, got {type(key).__name__}"
                        )
                    new.append((item_id, key, run, now))
                    decisions.append(("send", key))
                elif row[1] == "done":
                    decisions.append(("skip", row[0]))
                elif row[1] == "failed" and not retry_failed:
                    decisions.append(("skip_failed", row[0]))
                else:
                    again.append((run, now, item_id))
                    decisions.append(("resend", row[0]))
            db.executemany(
                "INSERT INTO items (item_id, key, state, run, sends, updated) "
                "VALUES (?, ?, 'sending', ?, 1, ?)",
                new,
            )
            db.executemany(
                "UPDATE items SET state='sending', run=?, sends=sends+1, updated=? WHERE item_id=?",
                again,
            )
            db.execute("COMMIT")
        except sqlite3.IntegrityError:
            db.execute("ROLLBACK")
            raise InvalidArgumentError(
                "key= gave two items the same idempotency key: WeChat Pay would answer the "
                "second with the first one's result"
            ) from None
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return decisions

    def release(self, run: int, new: Sequence[str], again: Sequence[str]) -> None:
        """Undo the claim of items ``run`` claimed but never started sending (the batch
        stopped first): ``new`` ones are forgotten, so the next run sends them as new
        rather than as "resent"; ``again`` ones stay in flight from before, one send less."""
        if not new and not again:
            return
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "DELETE FROM items WHERE item_id=? AND run=? AND state='sending' AND sends=1",
                [(item_id, run) for item_id in new],
            )
            db.executemany(
                "UPDATE items SET sends=sends-1 WHERE item_id=? AND run=? "
                "AND state='sending'",
                [(item_id, run) for item_id in again],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def record(self, outcomes: Sequence[Outcome]) -> None:
        """Store answered items (see ``Outcome``)."""
        if not outcomes:
            return
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "UPDATE items SET state=?, status=?, request_id=?, result=?, error=?, updated=? "
                "WHERE item_id=?",
                outcomes,
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def unresolved(self, run: int) -> int:
        """Items left in flight by an earlier run that ``run`` did not send again."""
        with self._reading() as db:
            sql = "SELECT count(*) FROM items WHERE state='sending' AND run<>?"
            return int(db.execute(sql, (run,)).fetchone()[0])

    # --- reading ---------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Items per state, e.g. ``{"done": 9990, "failed": 10}``."""
        with self._reading() as db:
            sql = "SELECT state, count(*) FROM items GROUP BY state"
            return {state: int(n) for state, n in db.execute(sql)}

    def rows(self, state: State | None = None) -> Iterator[JournalRow]:
        """Every item in the order it was first claimed, or those in ``state``."""
        sql = f"SELECT {', '.join(_COLUMNS)} FROM items"  # noqa: S608 - fixed column names
        args: tuple[str, ...] = ()
        if state is not None:
            sql += " WHERE state=?"
            args = (state,)
        with self._reading() as db:
            for row in db.execute(sql + " ORDER BY rowid", args):
                yield _row(row)

    def get(self, item_id: str) -> JournalRow | None:
        """The item ``item_id``, or None when the journal has never seen it."""
        with self._reading() as db:
            sql = f"SELECT {', '.join(_COLUMNS)} FROM items WHERE item_id=?"  # noqa: S608
            found = db.execute(sql, (item_id,)).fetchone()
        return None if found is None else _row(found)

    def export(
        self,
        target: str | os.PathLike[str] | IO[str],
        *,
        format: Literal["csv", "jsonl"] | None = None,
        state: State | None = None,
    ) -> int:
        """Write the items (or those in ``state``) as CSV or JSON Lines; how many were written.

        The format comes from ``format`` or the file name (``.csv``, ``.jsonl``). In CSV the
        result is a JSON text in its column.
        """
        return export_rows(self.rows(state), target, format)


def export_rows(
    rows: Iterator[JournalRow],
    target: str | os.PathLike[str] | IO[str],
    format: Literal["csv", "jsonl"] | None,
) -> int:
    """Write ``rows`` as CSV or JSON Lines to a path (created 0600: it holds every answer, as
    path sinks do) or a text stream; the count written."""
    if isinstance(target, str | os.PathLike):
        name = os.fspath(target)
        kind = format or _FORMATS.get(Path(name).suffix.lower())
        if kind is None:
            raise InvalidArgumentError(
                "export needs format='csv' or 'jsonl' (or a .csv/.jsonl file name)"
            )
        _check_format(kind)
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="utf-8", newline="") as out:
            return _write(out, rows, kind)
    if format is None:
        raise InvalidArgumentError("export to a stream needs format='csv' or 'jsonl'")
    _check_format(format)
    return _write(target, rows, format)


def _create_private(path: str) -> None:
    """Create the journal file readable by its owner only (it holds every request's outcome,
    as path sinks do); SQLite gives its ``-wal``/``-shm`` files the same mode."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError:  # a directory that does not exist, etc.: sqlite3 says it better
        pass


def _row(row: tuple[Any, ...]) -> JournalRow:
    values = dict(zip(_COLUMNS, row, strict=True))
    raw = values["result"]
    if raw is not None:
        try:
            values["result"] = json.loads(raw)
        except ValueError:
            pass  # an answer labelled JSON that is not: kept as its text
    return JournalRow(**values)


_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def _check_format(kind: str) -> None:
    if kind not in ("csv", "jsonl"):
        raise InvalidArgumentError(f"export format must be 'csv' or 'jsonl', got {kind!r}")


def _write(out: IO[str], rows: Iterator[JournalRow], format: str) -> int:
    count = 0
    if format == "csv":
        writer = csv.writer(out)
        writer.writerow(_COLUMNS)
        for row in rows:
            values = asdict(row)
            result = values["result"]
            values["result"] = (
                "" if result is None else json.dumps(result, ensure_ascii=False, sort_keys=True)
            )
            writer.writerow(["" if values[c] is None else values[c] for c in _COLUMNS])
            count += 1
        return count
    for row in rows:
        out.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")
        count += 1
    return count
