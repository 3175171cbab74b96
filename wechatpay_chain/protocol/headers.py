"""Request headers merged case-insensitively: one header per name, whatever its spelling.

The caller's ``headers=`` keep their spelling; a default the SDK adds (``Accept``,
``Content-Type``) is skipped when the caller gave that header in any spelling, and a header
the SDK owns (``Authorization``, the multipart ``Content-Type``) replaces the caller's value
under the caller's spelling, never beside it.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

__all__ = ["put", "put_default", "spelling"]


def _lower(name: str | bytes) -> str:
    return (name.decode("ascii") if isinstance(name, bytes) else name).lower()


def spelling(headers: MutableMapping[Any, Any], name: str) -> Any:
    """The key under which ``headers`` holds ``name`` (any case), or None."""
    if name in headers:
        return name
    lower = name.lower()
    for key in headers:
        if _lower(key) == lower:
            return key
    return None


def put(headers: MutableMapping[Any, Any], name: str, value: str) -> None:
    """Set ``name`` to ``value``, under the spelling already there if there is one."""
    key = spelling(headers, name)
    headers[name if key is None else key] = value


def put_default(headers: MutableMapping[Any, Any], name: str, value: str) -> None:
    """Set ``name`` unless ``headers`` has it in any spelling."""
    if spelling(headers, name) is None:
        headers[name] = value
