"""What a batch sends and reports, whichever journal keeps it: the call, the summary, outcomes.

Shared by the one-process runner (``batch.py``, SQLite journal) and the multi-worker one
(``stores/batch.py``, PostgreSQL journal).
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import sys
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import IO, TYPE_CHECKING, Any, Generic, Literal

import anyio
import httpx

from .._exceptions import APIError, InvalidArgumentError
from .journal import JournalRow, Outcome, State
from .session import Session

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from ..stores.base import JournalReader

__all__ = ["CHUNK", "BatchCall", "BatchSummary", "InputRunner", "default_item_id"]

if sys.version_info >= (3, 13):
    from typing import TypeVar
else:
    from typing_extensions import TypeVar

T = TypeVar("T")
#: The client type a batch sends with; ``BatchCall[str]`` leaves it open (``Any``).
S = TypeVar("S", bound=Session, default=Any)

class BatchCall(Generic[T, S]):
    """One item's call: what ``send`` receives.

    Put ``idempotency_key`` in the request's ``out_…_no`` field: it is the same on every run
    for this item, so WeChat Pay answers a resend with the first send's result. Send through
    ``client``: it carries the batch's retry policy and rate limits.
    """

    __slots__ = ("client", "idempotency_key", "item", "item_id", "resent")

    def __init__(
        self, item: T, item_id: str, idempotency_key: str, client: S, resent: bool
    ) -> None:
        self.item = item
        self.item_id = item_id
        self.idempotency_key = idempotency_key
        self.client = client
        #: True when an earlier run may already have sent this item (same key).
        self.resent = resent

    def __repr__(self) -> str:
        # Item ids are often openids: kept out of reprs, which end up in logs.
        return f"<BatchCall idempotency_key={self.idempotency_key!r} resent={self.resent}>"


@dataclass(frozen=True)
class BatchSummary:
    """What a batch run did. Per-item results stay in the journal: see ``export``."""

    journal: JournalReader
    run: int
    #: Items read from the input, and how many of them were sent in this run.
    total: int
    sent: int
    succeeded: int
    #: Sent in this run without success: answered with an error, or not answered at all
    #: (a read timeout, a dropped connection: left ``sending``, sent again next run).
    failed: int
    #: Done in an earlier run (or failed there, with ``retry_failed=False``): not sent.
    skipped: int
    #: Left in flight (or failed) by an earlier run and sent again with their recorded key.
    resent: int
    #: The same item id again within this run: not sent twice.
    duplicates: int
    #: In flight in an earlier run but absent from this run's input: still unresolved.
    unresolved: int
    elapsed: float
    #: A shared (PostgreSQL) batch: items per state in the whole batch, all workers together.
    batch: dict[str, int] | None = None

    @property
    def ok(self) -> bool:
        """Nothing failed and nothing from an earlier run is left unresolved."""
        failed = self.failed if self.batch is None else self.batch.get("failed", 0)
        return failed == 0 and self.unresolved == 0

    @property
    def rate(self) -> float:
        """Items sent per second."""
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    def __str__(self) -> str:
        return (
            f"{self.total} items: {self.succeeded} ok, {self.failed} failed, "
            f"{self.skipped} skipped, {self.resent} resent, {self.duplicates} duplicates, "
            f"{self.unresolved} unresolved; {self.sent} sent in {self.elapsed:.1f} s "
            f"({self.rate:.0f}/s)"
            + (
                ""
                if self.batch is None
                else "; whole batch: "
                + ", ".join(f"{n} {state}" for state, n in sorted(self.batch.items()))
            )
        )

    def export(
        self,
        target: str | os.PathLike[str] | IO[str],
        *,
        format: Literal["csv", "jsonl"] | None = None,
        state: State | None = None,
    ) -> int:
        """Write every journaled item (or those in ``state``) as CSV or JSON Lines."""
        return self.journal.export(target, format=format, state=state)

    def failures(self) -> list[JournalRow]:
        """The items whose last send failed, with their errors: those answered with an
        error (``failed``), then those left without an answer (``sending``, outcome
        unknown: the next run sends them again with the same key)."""
        unknown = [row for row in self.journal.rows("sending") if row.error]
        return list(self.journal.rows("failed")) + unknown


def default_item_id(item: object) -> str:
    """A str or int is its own id; other JSON-able items are identified by their JSON."""
    if isinstance(item, str):
        return item
    if isinstance(item, int) and not isinstance(item, bool):
        return str(item)
    try:
        return json.dumps(item, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"batch items of type {type(item).__name__} need item_id=: a function giving each "
            "item a stable, unique str id"
        ) from None


class _NewKeys:
    """32 hex characters: a random prefix per run, then a counter.

    Unique (the journal enforces it), short enough for every ``out_…_no`` field, and
    increasing within a run, so the journal's key index grows at its end.
    """

    __slots__ = ("_count", "_prefix")

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._count = itertools.count(1)

    def __call__(self, item: object) -> str:
        return f"{self._prefix}{next(self._count):016x}"


def _success(item_id: str, result: object) -> Outcome:
    status: int | None = None
    request_id: str | None = None
    text: str | None = None
    if isinstance(result, httpx.Response):
        status = result.status_code
        request_id = result.headers.get("Request-ID")
        if "json" in result.headers.get("Content-Type", ""):
            try:
                text = result.content.decode("utf-8") or None  # parsed when read back
            except (httpx.ResponseNotRead, UnicodeDecodeError):
                text = None
    else:
        try:
            text = json.dumps(result, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError):
            text = None  # not JSON-able: the outcome is kept, the value is not
    return ("done", status, request_id, text, None, time.time(), item_id)


#: Transport errors after which nothing can have reached WeChat Pay.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def _failure(item_id: str, error: BaseException) -> Outcome:
    """A failed send. One whose request may have been processed (no answer: a read
    timeout, a dropped connection) stays ``sending`` in the journal, with its error: its
    outcome is unknown, so the next run sends it again with the same key (WeChat Pay
    de-duplicates on it) even with ``retry_failed=False``."""
    status = request_id = None
    if isinstance(error, APIError):
        status, request_id = error.status_code, error.request_id
    error_text = f"{type(error).__name__}: {error}"
    unknown = isinstance(error, httpx.TransportError) and not isinstance(error, _NOT_SENT)
    state = "sending" if unknown else "failed"
    return (state, status, request_id, None, error_text, time.time(), item_id)


#: Input items taken per step (claimed per journal transaction, at most).
CHUNK = 256


class InputRunner(Generic[T]):
    """What both runners share: their input read a chunk at a time, their tasks guarded.

    A subclass sets ``source`` (a plain iterable's iterator) or ``stream`` (fed by ``_read``
    from an async iterable), and ``scope``, the task group's cancel scope.
    """

    source: Iterator[T] | None
    stream: MemoryObjectReceiveStream[T] | None
    exhausted: bool
    fatal: BaseException | None
    scope: anyio.CancelScope | None

    async def _guard(self, task: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run a task; a bug (not a failed call) stops the whole batch and is raised."""
        try:
            await task(*args)
        except Exception as exc:
            if self.fatal is None:
                self.fatal = exc
            assert self.scope is not None
            self.scope.cancel()

    async def _read(self, items: AsyncIterable[T], tx: MemoryObjectSendStream[T]) -> None:
        async with tx:
            async for item in items:
                await tx.send(item)

    async def _next_chunk(self) -> list[T]:
        if self.source is not None:
            chunk = list(islice(self.source, CHUNK))
            if len(chunk) < CHUNK:
                self.exhausted = True
            return chunk
        assert self.stream is not None
        try:
            chunk = [await self.stream.receive()]
        except anyio.EndOfStream:
            self.exhausted = True
            return []
        while len(chunk) < CHUNK:
            try:
                chunk.append(self.stream.receive_nowait())
            except anyio.WouldBlock:
                break
            except anyio.EndOfStream:
                self.exhausted = True
                break
        return chunk
