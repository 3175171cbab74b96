"""Streaming an answer's body into a path or a binary file instead of memory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from ._exceptions import InvalidArgumentError

__all__ = ["receive_into"]


def _open(sink: Any) -> tuple[BinaryIO, Path | None]:
    if isinstance(sink, str | os.PathLike):
        path = Path(sink)
        try:
            return open(path, "wb"), path
        except OSError as exc:
            raise InvalidArgumentError(
                f"sink {str(path)!r} cannot be written: {exc.strerror}"
            ) from None
    if hasattr(sink, "write"):
        return sink, None
    raise InvalidArgumentError(f"sink must be a path or a binary file, got {type(sink).__name__}")


async def receive_into(
    http: httpx.AsyncClient, request: httpx.Request, sink: Any
) -> httpx.Response:
    """Send ``request``; a 2xx body goes to ``sink``, an error body is read for the APIError.

    A path sink that did not receive the whole body is deleted, so no partial file remains.
    """
    target, path = _open(sink)
    done = False
    try:
        response = await http.send(request, stream=True)
        try:
            if response.status_code >= 400:
                await response.aread()
            else:
                async for chunk in response.aiter_bytes():
                    target.write(chunk)
                response.extensions = {**response.extensions, "sink": sink}
        finally:
            await response.aclose()
        done = response.status_code < 400
        return response
    finally:
        if path is not None:
            target.close()
            if not done:
                path.unlink(missing_ok=True)
