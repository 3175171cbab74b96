"""``httpx.Request`` and ``httpx.Response`` built without re-normalising what we built ourselves.

The hot path hands httpx headers it already holds as ``(name, value)`` pairs and a body it
already holds as bytes. httpx's constructors run every header through its normalisation and
every body through its stream machinery again, a measurable share of the hot path's own CPU
(bench/README.md). The builders here fill the same attributes directly.

They depend on how this httpx lays out its objects, so the layout is checked once, at import:
a request and a response are built both ways and their attributes compared. When anything
differs (another httpx version, say), the builders use the public constructors instead, and
the result is the same objects, just a little slower.
"""

from __future__ import annotations

from typing import Any

import httpx

from ..protocol import v3

__all__ = ["build_request", "build_response", "header_items", "signed_values"]

_new = object.__new__


def _headers(items: list[tuple[bytes, bytes, bytes]]) -> httpx.Headers:
    """An httpx.Headers holding ``items``, (name, lower-cased name, value), as it keeps them."""
    headers: httpx.Headers = _new(httpx.Headers)
    headers._list = items
    headers._encoding = None
    return headers


def _fast_request(
    method: str,
    url: httpx.URL,
    items: list[tuple[bytes, bytes, bytes]],
    content: bytes,
    extensions: dict[str, Any],
) -> httpx.Request:
    request: httpx.Request = _new(httpx.Request)
    request.method = method
    request.url = url
    request.headers = _headers(items)
    request.extensions = extensions
    request.stream = httpx.ByteStream(content)
    request._content = content
    return request


def _pairs(items: list[tuple[bytes, bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(name, value) for name, _, value in items]


def _public_request(
    method: str,
    url: httpx.URL,
    items: list[tuple[bytes, bytes, bytes]],
    content: bytes,
    extensions: dict[str, Any],
) -> httpx.Request:
    stream = httpx.ByteStream(content)
    headers = _pairs(items)
    request = httpx.Request(method, url, headers=headers, stream=stream, extensions=extensions)
    request.read()
    return request


def _fast_response(
    status: int,
    headers: list[tuple[bytes, bytes, bytes]],
    stream: Any,
    extensions: dict[str, Any],
) -> httpx.Response:
    response: httpx.Response = _new(httpx.Response)
    response.status_code = status
    response.headers = _headers(headers)  # as the parser gave them, not copied
    response._request = None
    response.next_request = None
    response.extensions = extensions
    response.history = []
    response.is_closed = False
    response.is_stream_consumed = False
    response.default_encoding = "utf-8"
    response.stream = stream
    response._num_bytes_downloaded = 0
    return response


def _public_response(
    status: int,
    headers: list[tuple[bytes, bytes, bytes]],
    stream: Any,
    extensions: dict[str, Any],
) -> httpx.Response:
    return httpx.Response(status, headers=_pairs(headers), stream=stream, extensions=extensions)


def _fast_items(headers: httpx.Headers) -> list[tuple[bytes, bytes, bytes]]:
    return headers._list


def _public_items(headers: httpx.Headers) -> list[tuple[bytes, bytes, bytes]]:
    return [(name, name.lower(), value) for name, value in headers.raw]


def _same(fast: object, public: object, skip: tuple[str, ...]) -> bool:
    a = {k: v for k, v in vars(fast).items() if k not in skip}
    b = {k: v for k, v in vars(public).items() if k not in skip}
    return a == b


def _layout_matches() -> bool:
    try:
        url = httpx.URL("https://api.mch.weixin.qq.com/v3/x?a=1")
        items = [
            (b"Host", b"host", b"api.mch.weixin.qq.com"),
            (b"Content-Type", b"content-type", b"application/json"),
            (b"X-Mixed-Case", b"x-mixed-case", b"Value"),
        ]
        extensions = {"timeout": {"read": 1.0}}
        fast_req = _fast_request("POST", url, list(items), b"{}", extensions)
        public_req = _public_request("POST", url, items, b"{}", extensions)
        if not (
            _same(fast_req, public_req, ("stream", "headers"))
            and vars(fast_req.headers) == vars(public_req.headers)
            and fast_req.content == public_req.content
            and fast_req.read() == public_req.read()
        ):
            return False
        raw = [
            (b"Content-Type", b"content-type", b"application/json"),
            (b"Wechatpay-Serial", b"wechatpay-serial", b"PUB_KEY_ID_1"),
        ]
        stream = httpx.ByteStream(b"{}")
        fast_resp = _fast_response(200, list(raw), stream, {"http_version": b"HTTP/1.1"})
        public_resp = _public_response(200, raw, stream, {"http_version": b"HTTP/1.1"})
        return (
            _same(fast_resp, public_resp, ("headers",))
            and vars(fast_resp.headers) == vars(public_resp.headers)
            and _fast_items(public_resp.headers) == _public_items(public_resp.headers)
        )
    except Exception:  # any surprise in the layout: use the public constructors
        return False


FAST = _layout_matches()
build_request = _fast_request if FAST else _public_request
build_response = _fast_response if FAST else _public_response
#: The ``(name, lower-cased name, value)`` triples of an httpx.Headers, without copying them.
header_items = _fast_items if FAST else _public_items


_SIGNED_INDEX = {name.lower().encode("ascii"): i for i, name in enumerate(v3.SIGNED_NAMES)}


def signed_values(headers: httpx.Headers) -> list[str | None]:
    """The five ``Wechatpay-*`` values (``v3.SIGNED_NAMES`` order) in one pass over the raw
    list (five ``get`` calls would scan it five times), repeats joined as ``get`` joins them."""
    found: list[bytes | None] = [None] * len(_SIGNED_INDEX)
    for _, lower, value in header_items(headers):
        i = _SIGNED_INDEX.get(lower)
        if i is not None:
            before = found[i]
            found[i] = value if before is None else before + b", " + value
    values: list[str | None] = []
    for raw in found:
        if raw is None:
            values.append(None)
            continue
        try:
            values.append(raw.decode("ascii"))  # what httpx gives for ASCII, without its scan
        except UnicodeDecodeError:
            values.append(raw.decode(headers.encoding))
    return values
