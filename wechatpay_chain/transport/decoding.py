"""Content codings of answers: what the client asks for, what it decodes, and how much.

The rule (README, "Compressed answers"): requests say ``Accept-Encoding: gzip, deflate``,
and exactly those are decoded, with or without optional packages (brotli, zstandard)
installed; an answer in any other coding is refused. So the bytes a signature is checked
over never depend on what happens to be installed. Decoding is bounded:

- an answer read into memory (every call without ``sink=``) may be at most
  ``max_answer_size`` bytes once decoded (``Client(max_answer_size=)``): WeChat Pay's
  answers are a few KiB, and a few KiB of gzip can inflate to gigabytes;
- a ``sink=`` download is decoded as it streams, at most ``STEP`` bytes per inflate call.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from .._config import DEFAULT_MAX_ANSWER_SIZE

__all__ = ["ACCEPT_ENCODING", "DEFAULT_MAX_ANSWER_SIZE", "check_size", "decoded", "read_answer"]

ACCEPT_ENCODING = "gzip, deflate"
#: Output of one inflate call when streaming into a sink.
STEP = 1024 * 1024
_GZIP = ("gzip", "x-gzip")


class _Inflater:
    """One gzip or deflate layer; deflate is zlib-wrapped or raw, as httpx accepts it."""

    __slots__ = ("_gzip", "_obj", "_started")

    def __init__(self, coding: str) -> None:
        self._gzip = coding in _GZIP
        self._obj: Any = zlib.decompressobj(zlib.MAX_WBITS | 16 if self._gzip else zlib.MAX_WBITS)
        self._started = False

    def pieces(self, data: bytes, step: int) -> Iterator[bytes]:
        """``data`` decoded, ``step`` bytes at a time at most."""
        try:
            out = self._obj.decompress(data, step)
        except zlib.error:
            if self._gzip or self._started:
                raise httpx.DecodingError("the answer's compressed body is corrupt") from None
            self._obj = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate
            try:
                out = self._obj.decompress(data, step)
            except zlib.error:
                raise httpx.DecodingError("the answer's compressed body is corrupt") from None
        self._started = True
        while True:
            if out:
                yield out
            tail = self._obj.unconsumed_tail
            if not tail:
                return
            try:
                out = self._obj.decompress(tail, step)
            except zlib.error:
                raise httpx.DecodingError("the answer's compressed body is corrupt") from None

    def end(self) -> None:
        if not self._obj.eof or self._obj.unused_data:
            raise httpx.DecodingError("the answer's compressed body is truncated or padded")


def _inflater(headers: httpx.Headers) -> _Inflater | None:
    """The decoder for the answer's Content-Encoding (None: identity); refuses the rest."""
    codings = [
        part.strip().lower()
        for value in headers.get_list("content-encoding")
        for part in value.split(",")
    ]
    codings = [coding for coding in codings if coding and coding != "identity"]
    if not codings:
        return None
    if len(codings) == 1 and codings[0] in (*_GZIP, "deflate"):
        return _Inflater(codings[0])
    raise httpx.DecodingError(
        f"the answer's Content-Encoding is {', '.join(codings)[:80]!r}; this client asks "
        f"for and decodes {ACCEPT_ENCODING} only"
    )


def _too_large(limit: int) -> httpx.DecodingError:
    return httpx.DecodingError(
        f"the answer is larger than {limit} bytes (once decoded): use sink= for downloads, "
        f"or raise Client(max_answer_size=)"
    )


def check_size(body: bytes, limit: int) -> None:
    if len(body) > limit:
        raise _too_large(limit)


async def read_answer(response: httpx.Response, limit: int) -> None:
    """Read ``response`` (opened with ``stream=True``) into ``response.content``, decoded,
    refusing more than ``limit`` decoded bytes before holding them; closes it. (A
    response a custom transport already read is only measured: httpx decoded it.)"""
    if hasattr(response, "_content"):
        await response.aclose()
        check_size(response.content, limit)
        return
    try:
        inflater = _inflater(response.headers)
        parts = []
        size = 0
        async for raw in response.aiter_raw():
            if inflater is None:
                size += len(raw)
                if size > limit:
                    raise _too_large(limit)
                parts.append(raw)
                continue
            for piece in inflater.pieces(raw, min(STEP, limit - size + 1)):
                size += len(piece)
                if size > limit:
                    raise _too_large(limit)
                parts.append(piece)
        if inflater is not None and size:
            inflater.end()
    finally:
        await response.aclose()
    response._content = b"".join(parts)


async def decoded(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body of ``response`` (opened with ``stream=True``), decoded as it arrives, at
    most ``STEP`` bytes per piece: what ``aiter_bytes()`` gives, with bounded inflation and
    the codings above only. (A response a custom transport already read: its content.)"""
    if hasattr(response, "_content"):
        yield response.content
        return
    inflater = _inflater(response.headers)
    received = False
    async for raw in response.aiter_raw():
        if inflater is None:
            yield raw
            continue
        received = received or bool(raw)
        for piece in inflater.pieces(raw, STEP):
            yield piece
    if inflater is not None and received:
        inflater.end()
