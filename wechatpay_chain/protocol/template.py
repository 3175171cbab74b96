"""URI templates: placeholder names, RFC 6570 simple expansion, query strings."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from .._exceptions import InvalidArgumentError

__all__ = ["encode_query", "expand", "placeholders"]


@lru_cache(maxsize=4096)
def _parts(template: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Literal pieces and placeholder names of ``template``, alternating: lit, name, lit..."""
    literals: list[str] = []
    names: list[str] = []
    rest = template
    while True:
        start = rest.find("{")
        if start < 0:
            if "}" in rest:
                raise InvalidArgumentError(f"template {template!r} has an unmatched '}}'")
            literals.append(rest)
            break
        end = rest.find("}", start)
        if end < 0:
            raise InvalidArgumentError(f"template {template!r} has an unmatched '{{'")
        name = rest[start + 1 : end]
        if not name or "{" in name:
            raise InvalidArgumentError(f"template {template!r} has an empty or nested placeholder")
        literals.append(rest[:start])
        names.append(name)
        rest = rest[end + 1 :]
    return tuple(literals), tuple(names)


def placeholders(template: str) -> tuple[str, ...]:
    """The placeholder names of ``template`` in order."""
    return _parts(template)[1]


def expand(template: str, params: Mapping[str, str]) -> str:
    """``template`` with each placeholder replaced by its percent-encoded value (RFC 6570 {var})."""
    literals, names = _parts(template)
    if not names:
        return template
    out = [literals[0]]
    for name, literal in zip(names, literals[1:], strict=True):
        out.append(quote(params[name], safe=""))
        out.append(literal)
    return "".join(out)


def encode_query(query: Mapping[str, Any]) -> str:
    """``k=v&…`` in the given order; values percent-encoded except RFC 3986 unreserved."""
    pairs = []
    for key, value in query.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif not isinstance(value, str | int):
            raise InvalidArgumentError(
                f"query[{key!r}] must be str or int, got {type(value).__name__}"
            )
        pairs.append(f"{quote(str(key), safe='')}={quote(str(value), safe='')}")
    return "&".join(pairs)
