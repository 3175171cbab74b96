"""A batch run by several workers on a shared (PostgreSQL) journal.

Each worker loads its input into the journal (the first to load an item gives it its key) and
sends whatever it claims there, its own input's items or anyone's; it renews the leases of
what it holds while it lives, and stops when no item of the batch is pending or held. Items
held by a worker that stopped renewing are claimed again after their lease and sent with their
recorded key. The summary's ``batch`` counts, ``failures()``, ``export()`` and the progress
line cover the whole batch; its other counts are this worker's.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import httpx

from .._exceptions import InvalidArgumentError, WechatpayError
from ..services.batch_call import (
    CHUNK,
    BatchCall,
    BatchSummary,
    InputRunner,
    _failure,
    _success,
)
from ..services.journal import Outcome
from ..services.progress import Progress
from ..services.session import Session
from .journal import PostgresJournal

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream


__all__ = ["SharedRunner"]

T = TypeVar("T")
#: (item JSON, item id, idempotency key, resent)
_Work = tuple[str, str, str, bool]

_CHUNK = CHUNK  # input items loaded per statement
_FLUSH = 256  # outcomes buffered before they are written
_FLUSH_INTERVAL = 1.0  # seconds an outcome may wait in the buffer
_DRAW = 0.5  # seconds between progress redraws (each one counts the batch in the database)
_POLL = 0.2  # seconds, at most, between looks for work while other workers hold the rest


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _item_json(item: object) -> str:
    try:
        return json.dumps(item, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"items of a shared batch are stored as JSON so that any worker can send them; "
            f"a {type(item).__name__} is not JSON-able"
        ) from None


class SharedRunner(InputRunner[T]):
    """One worker's part of a shared batch (see the module docstring)."""

    def __init__(
        self,
        client: Session,
        send: Callable[[BatchCall[Any]], Awaitable[Any]],
        items: Iterable[T] | AsyncIterable[T],
        journal: PostgresJournal,
        concurrency: int,
        item_id: Callable[[T], str],
        key: Callable[[T], str],
        retry_failed: bool,
        progress: Progress | None,
    ) -> None:
        self.client = client
        self.send = send
        self.items = items
        self.journal = journal
        self.concurrency = concurrency
        self.claim_size = max(8, min(_CHUNK, concurrency * 2))
        self.item_id = item_id
        self.key = key
        self.retry_failed = retry_failed
        self.progress = progress
        self.run_id = 0
        self.started_at: Any = None
        self.read = self.sent = self.succeeded = self.failed = 0
        self.resent = self.duplicates = 0
        self.pending: list[Outcome] = []
        self.exhausted = False
        self.source: Iterator[T] | None = None
        self.stream: MemoryObjectReceiveStream[T] | None = None
        self.fatal: BaseException | None = None
        self.scope: anyio.CancelScope | None = None
        self.started = 0.0

    async def run(self) -> BatchSummary:
        journal = self.journal
        pool = journal.pool
        await pool.run(journal.open)
        self.run_id, self.started_at = await pool.run(journal.start_run, worker_name())
        self.started = time.monotonic()
        try:
            async with anyio.create_task_group() as outer:
                outer.start_soon(self._housekeeping)
                async with anyio.create_task_group() as group:
                    self.scope = group.cancel_scope
                    items = self.items
                    if isinstance(items, AsyncIterable):
                        tx, self.stream = anyio.create_memory_object_stream[T](_CHUNK)
                        group.start_soon(self._guard, self._read, items, tx)
                    else:
                        self.source = iter(items)
                    # The feeder claims ahead of the senders (a bounded stream between them), so
                    # no sender waits for a database round trip while there is work claimed.
                    claimed_tx, claimed_rx = anyio.create_memory_object_stream[_Work](
                        self.claim_size
                    )
                    group.start_soon(self._guard, self._feed, claimed_tx)
                    async with claimed_rx:
                        for _ in range(self.concurrency):
                            group.start_soon(self._guard, self._work, claimed_rx.clone())
                outer.cancel_scope.cancel()
        finally:
            # Shielded: the outcomes on hand are written even while the batch is cancelled.
            with anyio.CancelScope(shield=True):
                await self._flush()
                try:
                    # Claimed but unanswered (a stop or a crash of ``send``): the others need
                    # not wait for the lease. Their key stays; a resend is deduplicated.
                    await pool.run(journal.release, self.run_id)
                    await pool.run(journal.finish_run, self.run_id)
                    counts = await pool.run(journal.counts)
                finally:
                    # Reopened on demand (summary.export); a pool passed in stays open.
                    await pool.run(journal.close)
            elapsed = time.monotonic() - self.started
            if self.progress is not None:
                self.progress.finish(*self._batch_counts(counts), elapsed)
        if self.fatal is not None:
            raise self.fatal
        return BatchSummary(
            journal=journal,
            run=self.run_id,
            total=self.read,
            sent=self.sent,
            succeeded=self.succeeded,
            failed=self.failed,
            skipped=max(0, self.read - self.duplicates - self.sent),
            resent=self.resent,
            duplicates=self.duplicates,
            unresolved=counts.get("pending", 0) + counts.get("sending", 0),
            elapsed=elapsed,
            batch=counts,
        )

    def _batch_counts(self, counts: dict[str, int]) -> tuple[int, int, int, int]:
        ok, failed = counts.get("done", 0), counts.get("failed", 0)
        if self.progress is not None:
            self.progress.total = sum(counts.values())
        return ok + failed, ok, failed, 0

    async def _load(self) -> None:
        chunk = await self._next_chunk()
        if not chunk:
            return
        entries: dict[str, tuple[str, str, str]] = {}
        make_id, make_key = self.item_id, self.key
        for item in chunk:
            name = make_id(item)
            if not isinstance(name, str) or not name:
                raise InvalidArgumentError(
                    f"item_id= must return a non-empty str, got {type(name).__name__}"
                )
            if name in entries:
                self.duplicates += 1
                continue
            key = make_key(item)
            if not isinstance(key, str) or not key:
                raise InvalidArgumentError(
                    f"key= must return a non-empty str, got {type(key).__name__}"
                )
            entries[name] = (name, key, _item_json(item))
        self.read += len(chunk)
        await self.journal.pool.run(self.journal.load, list(entries.values()))

    async def _feed(self, tx: MemoryObjectSendStream[_Work]) -> None:
        async with tx:
            while await self._refill(tx):
                pass

    async def _refill(self, tx: MemoryObjectSendStream[_Work]) -> bool:
        """Hand claimed items to the senders; False once the batch has nothing left for anyone."""
        journal = self.journal
        if not self.exhausted:
            await self._load()
        claimed = await journal.pool.run(
            journal.claim, self.run_id, self.claim_size, self.retry_failed, self.started_at
        )
        for item_id, key, item, sends in claimed:
            await tx.send((item, item_id, key, sends > 1))
        if claimed or not self.exhausted:
            return True
        await self._flush()
        pending, held, lease_left = await journal.pool.run(journal.open_items, self.run_id)
        if pending == 0 and held == 0:
            # What is left is this worker's own, in flight in its other tasks.
            return False
        # Other workers hold the rest: stay, to take it over should one of them die.
        wait = _POLL if lease_left is None else min(_POLL, max(0.05, lease_left))
        await anyio.sleep(wait)
        return True

    async def _work(self, rx: MemoryObjectReceiveStream[_Work]) -> None:
        client, send = self.client, self.send
        async with rx:
            async for item, item_id, key, resent in rx:
                self.sent += 1
                if resent:
                    self.resent += 1
                try:
                    result = await send(BatchCall(json.loads(item), item_id, key, client, resent))
                except (WechatpayError, httpx.HTTPError) as exc:
                    self.failed += 1
                    outcome = _failure(item_id, exc)
                else:
                    self.succeeded += 1
                    outcome = _success(item_id, result)
                self.pending.append(outcome)
                if len(self.pending) >= _FLUSH:
                    await self._flush()

    async def _flush(self) -> None:
        if self.pending:
            pending, self.pending = self.pending, []
            await self.journal.pool.run(self.journal.record, self.run_id, pending)

    async def _housekeeping(self) -> None:
        journal = self.journal
        renew_every = journal.lease / 3
        now = time.monotonic()
        last_flush = last_renew = last_draw = now
        while True:
            await anyio.sleep(min(_DRAW, renew_every))
            now = time.monotonic()
            if now - last_renew >= renew_every:
                await journal.pool.run(journal.renew, self.run_id)
                last_renew = now
            if now - last_flush >= _FLUSH_INTERVAL:
                await self._flush()
                last_flush = now
            if self.progress is not None and now - last_draw >= _DRAW:
                counts = await journal.pool.run(journal.counts)
                self.progress.draw(*self._batch_counts(counts), now - self.started)
                last_draw = now
