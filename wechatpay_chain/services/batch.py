"""Batch work: many calls with bounded concurrency, retries, rate limits and a crash-safe journal.

    async def send(call: BatchCall[str]) -> httpx.Response:
        return await call.client.v3.marketing.favor.users._openid_.coupons.post(
            openid=call.item, json={..., "out_request_no": call.idempotency_key}
        )

    summary = await client.batch(send, openids, journal="coupons.sqlite", concurrency=64)

Every item is journaled with its idempotency key before it is sent, and its outcome after. A
re-run on the same journal skips the items already done and sends the ones left in flight again
*with their recorded key*, which WeChat Pay deduplicates on: nothing lost, nothing sent twice.
"""

from __future__ import annotations

import inspect
import os
import time
from collections import deque
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Iterator, Sized
from typing import TYPE_CHECKING, Any, Generic, TextIO, cast

import anyio
import anyio.to_thread
import httpx

from .._exceptions import InvalidArgumentError, WechatpayError
from ..middlewares.retry import RetryPolicy
from ..middlewares.stack import resilient_stack
from .batch_call import (
    CHUNK,
    BatchCall,
    BatchSummary,
    InputRunner,
    S,
    T,
    _failure,
    _NewKeys,
    _success,
    default_item_id,
)
from .journal import Journal, Outcome
from .progress import Progress, progress_stream

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream

    from ..middlewares.ratelimit import RateLimit
    from ..stores.journal import PostgresJournal

__all__ = ["BatchCall", "BatchSummary", "Batches", "run_batch"]

_CHUNK = CHUNK
_FLUSH = 256  # outcomes buffered before they are written
_TICK = 0.2  # seconds between progress redraws
_FLUSH_INTERVAL = 1.0  # seconds an outcome may wait in the buffer


_Work = tuple[T, str, str, bool]


class _Runner(InputRunner[T], Generic[T, S]):
    """One run: ``concurrency`` workers share a queue of claimed items and refill it.

    A worker that finds the queue empty takes the next chunk of input, has the journal
    claim it in one transaction, and queues what is to be sent: no per-item task, stream or
    transaction. An async input is read by a task of its own, so a slow source never holds a
    half-filled chunk back.
    """

    def __init__(
        self,
        client: S,
        send: Callable[[BatchCall[T, S]], Awaitable[Any]],
        items: Iterable[T] | AsyncIterable[T],
        journal: Journal,
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
        self.item_id = item_id
        self.key = key
        self.retry_failed = retry_failed
        self.progress = progress
        self.run_id = 0
        self.read = self.sent = self.succeeded = self.failed = 0
        self.skipped = self.resent = self.duplicates = 0
        self.pending: list[Outcome] = []
        self.ready: deque[_Work[T]] = deque()
        self.exhausted = False
        self.source: Iterator[T] | None = None
        self.stream: MemoryObjectReceiveStream[T] | None = None
        self.fatal: BaseException | None = None
        self.scope: anyio.CancelScope | None = None
        self.started = 0.0

    async def run(self) -> BatchSummary:
        journal = self.journal
        journal.open()
        self.run_id = journal.start_run()
        self.started = time.monotonic()
        try:
            async with anyio.create_task_group() as outer:
                outer.start_soon(self._housekeeping)
                async with anyio.create_task_group() as group:
                    self.scope = group.cancel_scope
                    self.refill_lock = anyio.Lock(fast_acquire=True)
                    items = self.items
                    if isinstance(items, AsyncIterable):
                        tx, self.stream = anyio.create_memory_object_stream[T](_CHUNK)
                        group.start_soon(self._guard, self._read, items, tx)
                    else:
                        self.source = iter(items)
                    for _ in range(self.concurrency):
                        group.start_soon(self._guard, self._work)
                outer.cancel_scope.cancel()
        finally:
            # Plain (blocking) calls: they run even while the batch is being cancelled.
            try:
                self._flush()
                released = self._release_unsent()
                journal.finish_run(self.run_id)
                unresolved = journal.unresolved(self.run_id) + released
            finally:
                if not journal.in_memory:
                    journal.close()
            elapsed = time.monotonic() - self.started
            if self.progress is not None:
                self.progress.finish(*self._counts(), elapsed)
        if self.fatal is not None:
            raise self.fatal
        return BatchSummary(
            journal=journal,
            run=self.run_id,
            total=self.read,
            sent=self.sent,
            succeeded=self.succeeded,
            failed=self.failed,
            skipped=self.skipped,
            resent=self.resent,
            duplicates=self.duplicates,
            unresolved=unresolved,
            elapsed=elapsed,
        )

    def _counts(self) -> tuple[int, int, int, int]:
        ok, failed = self.succeeded, self.failed
        return ok + failed + self.skipped + self.duplicates, ok, failed, self.skipped

    async def _refill(self) -> None:
        """Claim the next chunk of input in the journal and queue what is to be sent."""
        chunk = await self._next_chunk()
        if not chunk:
            return
        item_id = self.item_id
        entries = []
        for item in chunk:
            name = item_id(item)
            if not isinstance(name, str) or not name:
                raise InvalidArgumentError(
                    f"item_id= must return a non-empty str, got {type(name).__name__}"
                )
            entries.append((name, item))
        self.read += len(entries)
        decisions = self.journal.claim(self.run_id, entries, self.key, self.retry_failed)
        ready = self.ready
        for (name, item), (action, key) in zip(entries, decisions, strict=True):
            if action == "send":
                ready.append((item, name, key, False))
            elif action == "resend":
                self.resent += 1
                ready.append((item, name, key, True))
            elif action == "duplicate":
                self.duplicates += 1
            else:
                self.skipped += 1

    async def _work(self) -> None:
        client, send, ready = self.client, self.send, self.ready
        while True:
            if not ready:
                async with self.refill_lock:
                    while not ready and not self.exhausted:
                        await self._refill()
                if not ready:
                    return  # the input is exhausted and every item taken
            item, item_id, key, resent = ready.popleft()
            self.sent += 1
            try:
                result = await send(BatchCall(item, item_id, key, client, resent))
            except (WechatpayError, httpx.HTTPError) as exc:
                self.failed += 1
                outcome = _failure(item_id, exc)
            else:
                self.succeeded += 1
                outcome = _success(item_id, result)
            pending = self.pending
            pending.append(outcome)
            if len(pending) >= _FLUSH:
                self._flush()

    def _release_unsent(self) -> int:
        """Give back the claims of items queued but never handed to ``send`` (the run was
        cancelled or stopped on an error); how many of them were left in flight before."""
        ready, self.ready = self.ready, deque()
        new = [item_id for _, item_id, _, resent in ready if not resent]
        again = [item_id for _, item_id, _, resent in ready if resent]
        self.resent -= len(again)
        self.journal.release(self.run_id, new, again)
        return len(again)

    def _flush(self) -> None:
        if self.pending:
            pending, self.pending = self.pending, []
            self.journal.record(pending)

    async def _housekeeping(self) -> None:
        progress = self.progress
        tick = _TICK if progress is not None else _FLUSH_INTERVAL
        last_flush = time.monotonic()
        while True:
            await anyio.sleep(tick)
            now = time.monotonic()
            if now - last_flush >= _FLUSH_INTERVAL:
                self._flush()
                last_flush = now
            if progress is not None:
                progress.draw(*self._counts(), now - self.started)


def _batch_client(
    client: S, retry: RetryPolicy | bool | None, rate_limit: RateLimit | None
) -> S:
    stack = client.middlewares
    changed = stack
    if retry is False:
        if "retry" in stack.names:
            changed = changed.without("retry")
    elif isinstance(retry, RetryPolicy):
        changed = resilient_stack(changed, retry=retry)
    elif retry is None or retry is True:
        if "retry" not in stack.names:
            changed = resilient_stack(changed, retry=RetryPolicy())
    else:
        raise InvalidArgumentError(
            f"retry must be a RetryPolicy, True, False or None, got {type(retry).__name__}"
        )
    if rate_limit is not None:
        from ..middlewares.ratelimit import RateLimit

        if not isinstance(rate_limit, RateLimit):
            raise InvalidArgumentError(
                f"rate_limit must be a RateLimit, got {type(rate_limit).__name__}"
            )
        names = changed.names
        anchor = next((n for n in ("limiter", "retry", "transformer") if n in names), None)
        if anchor is not None:
            changed = changed.insert("batch-limiter", rate_limit, after=anchor)
        else:
            changed = changed.insert("batch-limiter", rate_limit)
    return client if changed is stack else client._with_stack(changed)


async def run_batch(
    client: S,
    send: Callable[[BatchCall[T, S]], Awaitable[Any]],
    items: Iterable[T] | AsyncIterable[T],
    *,
    journal: str | os.PathLike[str] | Journal | PostgresJournal,
    concurrency: int = 16,
    item_id: Callable[[T], str] | None = None,
    key: Callable[[T], str] | None = None,
    retry: RetryPolicy | bool | None = None,
    rate_limit: RateLimit | None = None,
    retry_failed: bool = True,
    progress: bool | TextIO | None = None,
    total: int | None = None,
) -> BatchSummary:
    """Run ``send`` for every item; see :class:`Batches`."""
    if not callable(send):
        raise InvalidArgumentError(f"send must be an async function, got {type(send).__name__}")
    if not isinstance(items, Iterable | AsyncIterable) or isinstance(items, str | bytes):
        raise InvalidArgumentError(
            f"items must be an iterable or async iterable of items, got {type(items).__name__}"
        )
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidArgumentError(f"concurrency must be an int >= 1, got {concurrency!r}")
    stream = progress_stream(progress)
    if total is None and isinstance(items, Sized):
        total = len(items)
    if not isinstance(journal, Journal | os.PathLike):
        # A PostgreSQL journal (or its DSN): several workers run the batch together.
        from ..stores.journal import shared_journal

        shared = shared_journal(journal)
        if shared is not None:
            from ..stores.batch import SharedRunner

            return await SharedRunner(
                _batch_client(client, retry, rate_limit),
                send,
                items,
                shared,
                concurrency,
                item_id or default_item_id,
                key or _NewKeys(),
                retry_failed,
                Progress(stream, total) if stream is not None else None,
            ).run()
    # Journal() names the wrong type when it is neither a path nor a PostgreSQL journal.
    store = journal if isinstance(journal, Journal) else Journal(cast("str", journal))
    runner = _Runner(
        _batch_client(client, retry, rate_limit),
        send,
        items,
        store,
        concurrency,
        item_id or default_item_id,
        key or _NewKeys(),
        retry_failed,
        Progress(stream, total) if stream is not None else None,
    )
    return await runner.run()


class Batches(Generic[S]):
    """``client.batch``: call it to run many calls as one resumable batch.

    ``await client.batch(send, items, journal="run.sqlite", concurrency=64)`` calls
    ``await send(call)`` for each item with at most ``concurrency`` calls at once, where
    ``call`` is a :class:`BatchCall` (the item, its idempotency key, and the client to send
    with). Options:

    - ``journal``: the SQLite file recording every item (required; ``":memory:"`` for none),
      or a ``postgresql://`` DSN / ``PostgresJournal`` that several workers share;
    - ``item_id``: a stable id per item (default: the item itself if str/int, else its JSON);
    - ``key``: the idempotency key of a new item (default: 32 hex characters, unique);
    - ``retry``: the retry policy (default: the client's, or ``RetryPolicy()``); False for none;
    - ``rate_limit``: a ``RateLimit`` for the batch's calls, on top of the client's own;
    - ``retry_failed``: send items that failed in an earlier run again (default True);
    - ``progress``: None shows a progress line on a terminal only; True, False or a stream;
    - ``total``: the item count for the progress bar when ``items`` has no ``len()``.

    A failed call (``APIError``, a transport error, a failed verification, bad call input) is
    recorded and the batch goes on; any other exception from ``send`` stops it and is raised,
    leaving the items in flight to be resent by the next run.
    """

    __slots__ = ("_client",)

    def __init__(self, client: S) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"<Batches of {self._client!r}>"

    async def __call__(
        self,
        send: Callable[[BatchCall[T, S]], Awaitable[Any]],
        items: Iterable[T] | AsyncIterable[T],
        *,
        journal: str | os.PathLike[str] | Journal | PostgresJournal,
        concurrency: int = 16,
        item_id: Callable[[T], str] | None = None,
        key: Callable[[T], str] | None = None,
        retry: RetryPolicy | bool | None = None,
        rate_limit: RateLimit | None = None,
        retry_failed: bool = True,
        progress: bool | TextIO | None = None,
        total: int | None = None,
    ) -> BatchSummary:
        return await run_batch(
            self._client,
            send,
            items,
            journal=journal,
            concurrency=concurrency,
            item_id=item_id,
            key=key,
            retry=retry,
            rate_limit=rate_limit,
            retry_failed=retry_failed,
            progress=progress,
            total=total,
        )

    def run_sync(
        self,
        send: Callable[[BatchCall[T, S]], Any],
        items: Iterable[T],
        **options: Any,
    ) -> BatchSummary:
        """The blocking form of ``client.batch(send, items, **options)``, for scripts.

        ``send`` may be a plain function (it runs in one of ``concurrency`` worker threads
        and sends with the ``*_sync`` verbs: ``call.client.v3....post_sync(...)``) or an
        async one. The batch itself runs on the client's sync bridge.
        """
        if not callable(send):
            raise InvalidArgumentError(f"send must be a function, got {type(send).__name__}")
        if inspect.iscoroutinefunction(send):
            chosen: Callable[[BatchCall[T, S]], Awaitable[Any]] = send
        else:
            concurrency = options.get("concurrency", 16)
            if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
                raise InvalidArgumentError(f"concurrency must be an int >= 1, got {concurrency!r}")
            threads = anyio.CapacityLimiter(concurrency)

            async def chosen(call: BatchCall[T, S]) -> Any:
                return await anyio.to_thread.run_sync(send, call, limiter=threads)

        async def run() -> BatchSummary:
            return await self(chosen, items, **options)

        return self._client._run_sync(run)
