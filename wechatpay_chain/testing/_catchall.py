"""The fake server's catch-all mode: every endpoint answers, with an echo of what it received.

``server.catch_all()`` turns it on (``reset()`` turns it off). A request that matches no
route then gets an answer instead of a 404, once it passed every check a routed request
passes (APIv3 signature; APIv2 merchant, ``sign`` and, for certificate endpoints, the
merchant certificate):

- APIv3: a signed ``200 {"echo": {"method", "path", "query", "json"}}``; ``path`` is as sent
  (placeholders percent-encoded), ``json`` the parsed body or None;
- APIv2: a SUCCESS answer repeating the request's fields (without ``sign`` and
  ``nonce_str``) plus ``echo_method`` and ``echo_path``, signed with the request's
  ``sign_type`` (endpoints WeChat Pay answers without ``sign`` are answered without one).

Faults from ``misbehave`` apply as to routed requests. A request answered here has no
``params`` and, as its ``template``, its path as sent (without the leading ``/``), so
``misbehave(kind, template=...)`` can still aim at a placeholder-free endpoint.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._core import FakeRequest, _Route

__all__ = ["echo", "route_for"]

_NEVER = re.compile(r"(?!)")  # the catch-all route is chosen, never matched
_DROPPED_V2_FIELDS = frozenset({"sign", "nonce_str"})


def echo(request: FakeRequest) -> Any:
    """The catch-all answer to ``request``: usable as an ordinary route handler too."""
    if request.path.startswith("/v3/"):
        return {
            "echo": {
                "method": request.method,
                "path": request.path,
                "query": request.query,
                "json": request.data,
            }
        }
    fields = request.data if isinstance(request.data, dict) else {}
    answer = {k: v for k, v in fields.items() if k not in _DROPPED_V2_FIELDS}
    answer["echo_method"] = request.method
    answer["echo_path"] = request.path
    return answer


def route_for(method: str, path: str) -> _Route:
    """The route answering ``method path`` (no leading ``/``) when nothing else does."""
    from ._core import _Route

    return _Route(method, path, _NEVER, (), echo)
