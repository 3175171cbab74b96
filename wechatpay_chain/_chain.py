"""Immutable chain nodes: URI templates built by attribute and item access, and the verbs.

A node has no public attribute but the verbs and ``chain``: every other name is a segment.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Awaitable
from functools import lru_cache
from typing import Any, Protocol

import httpx

__all__ = ["Chain", "Sender", "Verb", "join", "normalize"]



class Sender(Protocol):
    """What a chain sends through: the client that made its root node."""

    def _send(
        self, method: str, template: str, options: dict[str, Any]
    ) -> Awaitable[httpx.Response]: ...

    def _send_sync(
        self, method: str, template: str, options: dict[str, Any]
    ) -> httpx.Response: ...


_UPPER = re.compile(r"(?<!^)([A-Z])")


@lru_cache(maxsize=2048)
def normalize(name: str) -> str:
    """The path segment an attribute name stands for (DESIGN.md §3)."""
    if len(name) > 2 and name[0] == "_" and name[-1] == "_":
        return "{" + name[1:-1] + "}"
    if name.endswith("_") and keyword.iskeyword(name[:-1]):
        return name[:-1]
    return _UPPER.sub(r"-\1", name).lower()


def join(template: str, path: str) -> str:
    """``template`` followed by ``path`` as written (a leading slash dropped, a trailing kept)."""
    if path.startswith("/"):
        path = path[1:]
    return f"{template}/{path}" if template else path


class Chain:
    """A URI template on a client. Attribute and item access return new nodes."""

    __slots__ = ("__weakref__", "_client", "_kids", "_template")

    _client: Sender
    _template: str
    _kids: dict[str, Chain]

    def __init__(self, client: Sender, template: str) -> None:
        object.__setattr__(self, "_client", client)
        object.__setattr__(self, "_template", template)
        object.__setattr__(self, "_kids", {})

    def __getattr__(self, name: str) -> Chain:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        kid = self._kids.get(name)
        if kid is None:
            kid = Chain(self._client, join(self._template, normalize(name)))
            self._kids[name] = kid
        return kid

    def __getitem__(self, path: str) -> Chain:
        if not isinstance(path, str):
            raise TypeError(f"chain segments are str, got {type(path).__name__}")
        return Chain(self._client, join(self._template, path))

    def chain(self, path: str) -> Chain:
        """The node for ``path`` (one or more segments, as written) below this one."""
        return self[path]

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("chain nodes are immutable")

    def __str__(self) -> str:
        return self._template

    def __repr__(self) -> str:
        return f"<Chain {self._template!r}>"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Chain)
            and other._client is self._client
            and other._template == self._template
        )

    def __hash__(self) -> int:
        return hash((id(self._client), self._template))

    def _verb(self, method: str, segment: str) -> Verb:
        # Kept beside the children under a key no attribute name can be (a NUL byte).
        verb = self._kids.get("\0" + segment)
        if verb is None:
            verb = self._kids["\0" + segment] = Verb(self, method, segment)
        return verb  # type: ignore[return-value]

    # Verbs: each is both callable (sends to this node) and a node (`node.delete.post()`).
    @property
    def get(self) -> Verb:
        return self._verb("GET", "get")

    @property
    def put(self) -> Verb:
        return self._verb("PUT", "put")

    @property
    def post(self) -> Verb:
        return self._verb("POST", "post")

    @property
    def patch(self) -> Verb:
        return self._verb("PATCH", "patch")

    @property
    def delete(self) -> Verb:
        return self._verb("DELETE", "delete")

    def get_sync(self, **options: Any) -> httpx.Response:
        return self._client._send_sync("GET", self._template, options)

    def put_sync(self, **options: Any) -> httpx.Response:
        return self._client._send_sync("PUT", self._template, options)

    def post_sync(self, **options: Any) -> httpx.Response:
        return self._client._send_sync("POST", self._template, options)

    def patch_sync(self, **options: Any) -> httpx.Response:
        return self._client._send_sync("PATCH", self._template, options)

    def delete_sync(self, **options: Any) -> httpx.Response:
        return self._client._send_sync("DELETE", self._template, options)


class Verb(Chain):
    """A verb attribute: call it to send ``method`` to the parent node, or keep chaining."""

    __slots__ = ("_method", "_target")

    _method: str
    _target: str

    def __init__(self, parent: Chain, method: str, segment: str) -> None:
        super().__init__(parent._client, join(parent._template, segment))
        object.__setattr__(self, "_method", method)
        object.__setattr__(self, "_target", parent._template)

    def __call__(self, **options: Any) -> Awaitable[httpx.Response]:
        return self._client._send(self._method, self._target, options)

    def __repr__(self) -> str:
        return f"<Verb {self._method} {self._target!r}>"

