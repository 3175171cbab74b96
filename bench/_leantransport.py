"""A prototype httpx transport over the lean floor's connections (benchmark only).

It answers one question: with httpx kept as the API (``httpx.Response`` out, the SDK's
pipeline unchanged), how close can a request get to the lean floor once httpcore's
connection pool and anyio's streams are out of the way? It has no TLS, proxies, timeouts
or idle expiry and must not be used for anything else.
"""

from __future__ import annotations

from typing import Any

import httpx
from _lean import PARSER, LeanPool


class LeanTransport(httpx.AsyncBaseTransport):
    def __init__(self, parser: str = PARSER) -> None:
        self._parser = parser
        self._pools: dict[tuple[str, int], LeanPool] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        pool = self._pools.get((url.host, port))
        if pool is None:
            pool = self._pools[(url.host, port)] = LeanPool(url.host, port, self._parser)
        body = request.content
        head = [b"%s %s HTTP/1.1\r\n" % (request.method.encode(), url.raw_path)]
        for name, value in request.headers.raw:
            head.append(b"%s: %s\r\n" % (name, value))
        head.append(b"\r\n")
        head.append(body)
        status, headers, content = await pool.request(b"".join(head))
        raw: list[tuple[bytes, bytes]] = list(headers.items())
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        return httpx.Response(status, headers=raw, content=content, extensions=extensions)

    async def aclose(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
