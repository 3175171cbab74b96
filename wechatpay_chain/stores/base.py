"""What a batch summary reads from its journal, whichever engine keeps it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol

from .._exceptions import WechatpayError

if TYPE_CHECKING:
    from ..services.journal import JournalRow

__all__ = ["JournalReader", "StoreUnavailableError"]


class StoreUnavailableError(WechatpayError):
    """A shared store (PostgreSQL, Redis) could not be reached: nothing was sent or recorded."""


class JournalReader(Protocol):
    """The reading side of a batch journal (SQLite ``Journal`` or ``PostgresJournal``)."""

    def counts(self) -> dict[str, int]: ...

    def rows(self, state: Any = None) -> Iterator[JournalRow]: ...

    def get(self, item_id: str) -> JournalRow | None: ...

    def export(
        self,
        target: str | os.PathLike[str] | IO[str],
        *,
        format: Literal["csv", "jsonl"] | None = None,
        state: Any = None,
    ) -> int: ...
