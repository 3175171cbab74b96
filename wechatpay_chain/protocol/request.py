"""The request on its way through the pipeline: plain data, filled stage by stage."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Body", "Request"]

Body = bytes | AsyncIterable[bytes] | Iterable[bytes] | None


@dataclass(slots=True, eq=False)
class Request:
    """One call on its way through the pipeline.

    The caller's options arrive as given (``json``, ``xml``, ``query``, ``body``...); the
    default middlewares fill ``path``, ``url``, ``target``, ``content`` and ``headers``.
    ``target`` and ``content`` are exactly what is sent, so a signer signs what goes out.
    """

    method: str
    template: str
    api: Literal["v2", "v3"]
    params: dict[str, str]
    base_url: str
    json: Any = None
    has_json: bool = False
    xml: Mapping[str, Any] | None = None
    query: Mapping[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    security: bool = False
    nonceless: bool = False
    sink: Any = None
    timeout: Any = None
    extensions: dict[str, Any] | None = None
    #: Per-call ``retry=`` (a RetryPolicy, True or False) and ``idempotent=`` (see _retry).
    retry: Any = None
    idempotent: bool | None = None
    #: Total seconds for the call (``deadline=``, else the client's): middlewares/deadline.py.
    deadline: float | None = None
    #: Path below the base URL, placeholders expanded (APIv2: without the ``v2/`` prefix).
    path: str = ""
    #: Full URL sent, and its path+query as signed.
    url: str = ""
    target: str = ""
    #: Exact body sent: bytes, or a stream for uploads.
    content: Body = None
    #: Scratch space for middlewares (e.g. the APIv2 sign_type chosen for the answer check).
    state: dict[str, Any] = field(default_factory=dict)
