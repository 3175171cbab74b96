"""The ``template`` stage: placeholders expanded, URL and signed target fixed."""

from __future__ import annotations

from functools import lru_cache

import httpx

from ..protocol.request import Request
from ..protocol.template import encode_query, expand
from .pipeline import Handler

__all__ = ["ExpandTemplate", "locate"]


def locate(request: Request) -> None:
    """Set ``url`` and ``target`` from ``base_url``, ``path`` and ``query``."""
    base = request.base_url
    qs = encode_query(request.query) if request.query else ""
    suffix = request.path + ("?" + qs if qs else "")
    request.url = base + suffix
    request.target = _base_path(base) + suffix


@lru_cache(maxsize=64)
def _base_path(base_url: str) -> str:
    return httpx.URL(base_url).raw_path.decode("ascii").split("?", 1)[0]


class ExpandTemplate:
    """``template``: placeholders expanded and percent-encoded, URL and target fixed."""

    async def __call__(self, request: Request, call_next: Handler) -> httpx.Response:
        template = request.template
        if request.api == "v2":
            template = template[3:]
        request.path = expand(template, request.params)
        locate(request)
        return await call_next(request)
