"""Reading WeChat Pay bills: CSV whose values carry a leading backtick, summary at the end.

A bill is a header line, one record per line (every value prefixed with `````, so numbers
stay text in spreadsheets), then a summary header and its line(s)::

    交易时间,公众账号ID,商户号,...
    `2019-02-19 05:01:46,`wxab8acd895ab1638a,`1921000401,...
    总交易单数,应结订单总金额,...
    `45.0,`0.47,...

Records are read one line at a time, so a bill of any size reads in constant memory.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import AsyncIterator, Iterator
from typing import IO, BinaryIO

import anyio.to_thread

from .._exceptions import InvalidArgumentError

__all__ = ["BillReader", "read_bill"]

_GZIP_MAGIC = b"\x1f\x8b"
_BATCH = 2000  # records parsed per worker-thread hop when iterating asynchronously


class BillReader:
    """Iterate a bill's records as dicts (header -> value, backtick removed, text kept).

    ``source`` is a path, ``bytes`` or a binary file object; gzip is recognised and read
    decompressed. ``for record in reader`` reads in this thread; ``async for`` reads in a
    worker thread. After the records, ``summary`` holds the summary line as a dict
    (``summaries`` all of them, for bills with several); ``header`` the column names.
    A line whose number of values differs from its header raises InvalidArgumentError.
    """

    def __init__(
        self, source: str | os.PathLike[str] | bytes | BinaryIO, *, encoding: str = "utf-8"
    ) -> None:
        if not isinstance(source, str | os.PathLike | bytes | bytearray) and not callable(
            getattr(source, "read", None)
        ):
            raise InvalidArgumentError(
                f"bill source must be a path, bytes or a binary file, got {type(source).__name__}"
            )
        self._source = source
        self._encoding = encoding
        self.header: list[str] | None = None
        self.summaries: list[dict[str, str]] = []
        self._names: list[str] | None = None  # the header the next value lines belong to
        self._in_summary = False
        self._line = 0
        self._started = False

    @property
    def summary(self) -> dict[str, str] | None:
        return self.summaries[0] if self.summaries else None

    # --- parsing ------------------------------------------------------------------------
    def _parse(self, raw: bytes) -> dict[str, str] | None:
        """One line: a record, or None for a header, an empty line or a summary line."""
        self._line += 1
        try:
            line = raw.decode(self._encoding)
        except UnicodeDecodeError:
            raise InvalidArgumentError(
                f"bill line {self._line} is not {self._encoding} text"
            ) from None
        line = line.rstrip("\r\n")
        if self._line == 1:
            line = line.lstrip("\ufeff")
        if not line.strip():
            return None
        if not line.startswith("`"):
            names = [name.strip() for name in line.split(",")]
            if self.header is None:
                self.header = names
            else:
                self._in_summary = True
            self._names = names
            return None
        if self._names is None:
            raise InvalidArgumentError(f"bill line {self._line} has values but no header before it")
        values = line[1:].split(",`")
        if len(values) != len(self._names):
            raise InvalidArgumentError(
                f"bill line {self._line} has {len(values)} values; its header has "
                f"{len(self._names)}"
            )
        row = dict(zip(self._names, values, strict=True))
        if self._in_summary:
            self.summaries.append(row)
            return None
        return row

    def _open(self) -> tuple[IO[bytes] | gzip.GzipFile, bool]:
        """A binary stream of the bill's text, and whether this reader must close it."""
        if self._started:
            raise InvalidArgumentError("a BillReader can be iterated once; make another")
        self._started = True
        source = self._source
        owned = False
        stream: IO[bytes]
        if isinstance(source, str | os.PathLike):
            try:
                stream = open(source, "rb")
            except OSError as exc:
                raise InvalidArgumentError(
                    f"bill file {os.fspath(source)!r} cannot be read: {exc.strerror}"
                ) from None
            owned = True
        elif isinstance(source, bytes | bytearray):
            stream, owned = io.BytesIO(source), True
        else:
            stream = source
        peek = getattr(stream, "peek", None)
        if callable(peek):
            head = peek(2)[:2]
        elif stream.seekable():
            position = stream.tell()
            head = stream.read(2)
            stream.seek(position)
        else:
            head = b""
        if head == _GZIP_MAGIC:
            return gzip.GzipFile(fileobj=stream), owned
        return stream, owned

    def __iter__(self) -> Iterator[dict[str, str]]:
        stream, owned = self._open()
        try:
            for raw in stream:
                row = self._parse(raw)
                if row is not None:
                    yield row
        except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
            raise InvalidArgumentError(f"bill cannot be read: {exc}") from None
        finally:
            if owned:
                stream.close()

    async def __aiter__(self) -> AsyncIterator[dict[str, str]]:
        lines = iter(self)

        def batch() -> list[dict[str, str]]:
            return [row for _, row in zip(range(_BATCH), lines, strict=False)]

        try:
            while rows := await anyio.to_thread.run_sync(batch):
                for row in rows:
                    yield row
        finally:
            lines.close()  # type: ignore[attr-defined]


def read_bill(
    source: str | os.PathLike[str] | bytes | BinaryIO, *, encoding: str = "utf-8"
) -> BillReader:
    """A :class:`BillReader` over ``source``: ``for record in read_bill(path): ...``."""
    return BillReader(source, encoding=encoding)
