"""A guard for httpx's own transport (trio, proxies, HTTP/2, ``transport=``): no connection
holding bytes after a complete answer is used again.

httpcore (1.0) starts the next cycle of an HTTP/1.1 connection with whatever followed the
answer still in h11's buffer, and reads those bytes as the next request's answer
(encode/httpcore#1093). After each answer on that transport, the SDK looks for an idle
connection with such bytes and marks it expired, so the pool closes it instead of lending
it. This reads httpcore's private attributes: when they are not what this version has,
the guard does nothing (the README says what remains).
"""

from __future__ import annotations

from typing import Any

__all__ = ["retire_tainted"]


def retire_tainted(transport: Any) -> None:
    """Mark as expired every idle HTTP/1.1 connection of ``transport`` (an
    ``httpx.AsyncHTTPTransport``) whose h11 state holds bytes after the last answer."""
    pool = getattr(transport, "_pool", None)
    connections = getattr(pool, "_connections", None)
    if not connections:
        return
    for connection in connections:
        inner: Any = getattr(connection, "_connection", None)
        state = getattr(inner, "_h11_state", None)
        if state is None:
            continue
        try:
            if state.trailing_data[0] and inner.is_idle():
                inner._expire_at = 0.0  # has_expired(): the pool closes it, never lends it
        except (AttributeError, TypeError):
            continue
