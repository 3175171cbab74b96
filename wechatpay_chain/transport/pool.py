"""One connection pool: an httpx client and, when it allows, the direct path to its transport."""

from __future__ import annotations

import datetime
import logging
import time
from typing import Any

import httpx

from .._config import DEFAULT_MAX_ANSWER_SIZE
from ..protocol.request import Request
from .decoding import check_size, read_answer
from .httpcore_guard import retire_tainted
from .models import build_request

__all__ = ["Pool"]

_HTTPX_LOG = logging.getLogger("httpx")
_URLS: dict[str, tuple[httpx.URL, bytes]] = {}


def _url(text: str) -> tuple[httpx.URL, bytes]:
    """The parsed URL and its ``Host`` header value, parsed once per distinct URL."""
    known = _URLS.get(text)
    if known is None:
        if len(_URLS) >= 512:
            _URLS.clear()
        url = httpx.URL(text)
        known = _URLS[text] = (url, url.netloc)
    return known


class Pool:
    """An httpx client and, when none of its options needs ``AsyncClient.send``, the
    transport under it: requests are then built and handed to the transport directly (the
    same request httpx would build, without its client machinery)."""

    __slots__ = ("_base", "_direct", "_timeout", "direct", "guard", "http")

    def __init__(self, http: httpx.AsyncClient, direct: httpx.AsyncBaseTransport | None) -> None:
        self.http = http
        #: httpx's own transport under it: connections checked after answers (httpcore_guard).
        self.guard = isinstance(http._transport, httpx.AsyncHTTPTransport)
        self._direct = direct
        self.direct = direct is not None
        #: The client's default headers as (name, lower-cased name, value) bytes.
        self._base = [(n, n.lower(), v) for n, v in http.headers.raw]
        self._timeout = http.timeout.as_dict()

    async def send(self, request: Request, limit: int = DEFAULT_MAX_ANSWER_SIZE) -> httpx.Response:
        """Send ``request`` (a bytes or empty body) as ``http.send`` would, and read it:
        decoded, at most ``limit`` bytes (transport/decoding.py)."""
        transport = self._direct
        assert transport is not None
        if self.http.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        given = request.headers
        items: list[tuple[bytes, bytes, bytes]]
        names: set[bytes] | tuple[()] = ()
        if given:
            # The request's headers replace the client's of the same name (as httpx merges);
            # str names and values are ASCII, as httpx requires.
            names = set()
            extra = []
            name: str | bytes
            value: str | bytes
            for name, value in given.items():
                raw = name.encode("ascii") if isinstance(name, str) else name
                lower = raw.lower()
                names.add(lower)
                data = value.encode("ascii") if isinstance(value, str) else value
                extra.append((raw, lower, data))
            items = [item for item in self._base if item[1] not in names]
            items += extra
        else:
            items = self._base.copy()
        timeout = request.timeout
        extensions: dict[str, Any] = {
            "timeout": self._timeout if timeout is None else httpx.Timeout(timeout).as_dict()
        }
        if request.extensions:
            extensions = {**request.extensions, **extensions}
        url, netloc = _url(request.url)
        content = request.content
        assert content is None or type(content) is bytes
        # What httpx.Request(content=...) adds, without its encoding machinery.
        if b"host" not in names:
            items.append((b"Host", b"host", netloc))
        if b"content-length" not in names and b"transfer-encoding" not in names:
            if content:
                items.append((b"Content-Length", b"content-length", b"%d" % len(content)))
            elif request.method in ("POST", "PUT", "PATCH"):
                items.append((b"Content-Length", b"content-length", b"0"))
        built = build_request(request.method, url, items, content or b"", extensions)
        start = time.perf_counter()
        try:
            response = await transport.handle_async_request(built)
        except httpx.RequestError as exc:
            exc.request = built
            raise
        response.request = built
        complete = getattr(response.stream, "complete_body", None)
        body = complete() if complete is not None else None
        if body is not None:  # the engine has the whole (identity-encoded) body already
            if len(body) > limit:
                check_size(body, limit)
            response._content = body
            response.is_stream_consumed = response.is_closed = True
        else:
            await read_answer(response, limit)  # decoded, bounded; closes it
        if self.guard:
            retire_tainted(transport)
        response.elapsed = datetime.timedelta(seconds=time.perf_counter() - start)
        if _HTTPX_LOG.isEnabledFor(logging.INFO):
            _HTTPX_LOG.info(
                'HTTP Request: %s %s "%s %d %s"',
                built.method,
                built.url,
                response.http_version,
                response.status_code,
                response.reason_phrase,
            )
        return response
