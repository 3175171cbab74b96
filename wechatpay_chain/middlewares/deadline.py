"""A total deadline per call (``deadline=`` on a verb, or ``Client(deadline=)``).

httpx's timeouts bound each step (connect, each read, each write, the pool): a server
trickling a byte a second never trips them. The deadline bounds the whole call, every
attempt and all its I/O, on any transport and event loop: the call is cancelled when it
passes (the connection in use is then closed, never reused) and ``DeadlineExceeded`` is
raised, an ``httpx.TimeoutException``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx

from .._exceptions import DeadlineExceeded, InvalidArgumentError

__all__ = ["check_deadline", "within"]


def check_deadline(value: Any, what: str = "deadline") -> float | None:
    """``value`` as seconds (None: no deadline); InvalidArgumentError unless a number > 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidArgumentError(f"{what} must be a number of seconds > 0 or None, got {value!r}")
    return float(value)


async def within(
    seconds: float, call: Callable[[Any], Awaitable[httpx.Response]], request: Any
) -> httpx.Response:
    """``await call(request)``, cancelled after ``seconds``: then DeadlineExceeded."""
    with anyio.move_on_after(seconds) as scope:
        return await call(request)
    assert scope.cancel_called
    raise DeadlineExceeded(
        f"{request.method} {request.template}: no answer within the {seconds:g} s deadline"
    )
