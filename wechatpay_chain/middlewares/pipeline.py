"""The named middleware stack and the request context flowing through it.

A middleware is an async callable ``(request, call_next) -> httpx.Response``. The first one
in the stack sees the request first and the answer last; the innermost hands the finished
request to the transport. Stacks are immutable: changing one gives a new stack.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import httpx

from .._exceptions import InvalidArgumentError
from ..protocol.request import Request

__all__ = ["Handler", "Middleware", "Request", "Sleep", "Stack"]

Handler = Callable[[Request], Awaitable[httpx.Response]]
#: How retry backoff and the rate limiter wait (``anyio.sleep`` unless a test injects one).
Sleep = Callable[[float], Awaitable[Any]]


class Middleware(Protocol):
    """What a pipeline stage is: call ``call_next`` to pass the request on."""

    async def __call__(self, request: Request, call_next: Handler) -> httpx.Response: ...


class Stack:
    """An ordered, named, immutable list of middlewares."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, Middleware]] = ()) -> None:
        self._items: tuple[tuple[str, Middleware], ...] = tuple(items)
        names = [name for name, _ in self._items]
        if len(set(names)) != len(names):
            raise InvalidArgumentError(f"middleware names must be unique: {names}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self._items)

    def __iter__(self) -> Any:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, name: str) -> Middleware:
        for key, middleware in self._items:
            if key == name:
                return middleware
        raise KeyError(self._unknown(name))

    def __repr__(self) -> str:
        return f"<Stack {list(self.names)}>"

    def _unknown(self, name: str) -> str:
        return f"no middleware named {name!r}; the stack has {list(self.names)}"

    def _index(self, name: str) -> int:
        for i, (key, _) in enumerate(self._items):
            if key == name:
                return i
        raise InvalidArgumentError(self._unknown(name))

    def without(self, *names: str) -> Stack:
        for name in names:
            self._index(name)
        return Stack(item for item in self._items if item[0] not in names)

    def replace(self, name: str, middleware: Middleware) -> Stack:
        i = self._index(name)
        items = list(self._items)
        items[i] = (name, middleware)
        return Stack(items)

    def insert(
        self,
        name: str,
        middleware: Middleware,
        *,
        before: str | None = None,
        after: str | None = None,
    ) -> Stack:
        """A stack with ``middleware`` added; by default outermost (first to see the request)."""
        if before is not None and after is not None:
            raise InvalidArgumentError("insert takes before= or after=, not both")
        items = list(self._items)
        if before is not None:
            i = self._index(before)
        elif after is not None:
            i = self._index(after) + 1
        else:
            i = 0
        items.insert(i, (name, middleware))
        return Stack(items)

    def compose(self, send: Handler) -> Handler:
        """One handler running every middleware in order, then ``send``."""
        handler = send
        for _, middleware in reversed(self._items):
            handler = _bind(middleware, handler)
        return handler


def _bind(middleware: Middleware, call_next: Handler) -> Handler:
    # A plain function handing back the middleware's awaitable: no coroutine of its own per
    # hop (four hops a request on the default stack).
    def handler(request: Request) -> Awaitable[httpx.Response]:
        return middleware(request, call_next)

    return handler
