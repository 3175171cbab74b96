"""What a service needs from a client: the narrow interface services are written against.

Services (certificates, media, bills, batches) never import ``Client``: they take anything
that can start a chain, derive itself with another middleware stack, expose its merchant
configuration and run a coroutine on its one sync bridge. ``Client`` is the implementation.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import httpx

if TYPE_CHECKING:
    from typing_extensions import Self

    from .._config import Config
    from ..middlewares.pipeline import Stack

__all__ = ["Node", "Session"]

T = TypeVar("T")

Verb = Callable[..., Awaitable[httpx.Response]]


class Node(Protocol):
    """A chain node: a URI template and the verbs that send to it."""

    def __getitem__(self, path: str) -> Node: ...

    @property
    def get(self) -> Verb: ...

    @property
    def post(self) -> Verb: ...

    def get_sync(self, **options: Any) -> httpx.Response: ...

    def post_sync(self, **options: Any) -> httpx.Response: ...


class Session(Protocol):
    """The client as the services see it."""

    @property
    def config(self) -> Config: ...

    @property
    def middlewares(self) -> Stack: ...

    def chain(self, path: str) -> Node: ...

    def without(self, *names: str) -> Self: ...

    def _with_stack(self, stack: Stack) -> Self:
        """A client sharing this one's connections and bridge, with ``stack``."""
        ...

    def _run_sync(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``make()`` on the client's sync bridge and wait for its result."""
        ...

    def _submit_sync(
        self, make: Callable[[], Coroutine[Any, Any, T]]
    ) -> concurrent.futures.Future[T]:
        """Start ``make()`` on the client's sync bridge; the future cancels it."""
        ...
