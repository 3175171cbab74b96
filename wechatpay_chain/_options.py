"""A verb's keyword options, checked and turned into the ``Request`` the pipeline carries."""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, Iterable, Mapping
from typing import Any, Literal

import httpx

from ._config import normalize_base_url
from ._exceptions import InvalidArgumentError
from .middlewares.deadline import check_deadline
from .middlewares.retry import check_call_options
from .middlewares.upload import UploadForm
from .protocol.request import Request
from .protocol.template import placeholders
from .transport.sink import Sink

__all__ = ["OPTIONS", "build_request"]

OPTIONS = frozenset(
    {
        "json",
        "xml",
        "query",
        "headers",
        "body",
        "security",
        "nonceless",
        "base_url",
        "base_uri",
        "sink",
        "timeout",
        "extensions",
        "retry",
        "idempotent",
        "deadline",
    }
)


def build_request(
    method: str,
    template: str,
    options: dict[str, Any],
    default_base_url: str,
    default_deadline: float | None = None,
) -> Request:
    """A verb's keyword options checked and turned into a ``Request``; nothing is sent."""
    api: Literal["v2", "v3"] = "v2" if template.startswith("v2/") else "v3"
    params: dict[str, str] = {}
    for name in placeholders(template):
        value = options.pop(name, None)
        if value is None:
            raise InvalidArgumentError(f"placeholder {{{name}}} of {template!r} has no value")
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise InvalidArgumentError(
                f"placeholder {{{name}}} must be str or int, got {type(value).__name__}"
            )
        text = str(value)
        if not text or text in (".", ".."):
            raise InvalidArgumentError(f"placeholder {{{name}}} must not be {text!r}")
        params[name] = text
    unknown = set(options) - OPTIONS
    if unknown:
        raise InvalidArgumentError(
            f"unknown option(s) {sorted(unknown)} for {template!r}: neither an option nor "
            f"one of its placeholders {list(placeholders(template))}" + _suggest(unknown, api)
        )
    for name in options.keys() & _TYPED:
        _check_type(name, options[name])
    base_url = options.get("base_url") or options.get("base_uri")
    json_value = options.get("json")
    headers = options.get("headers")
    if headers is not None:
        if not isinstance(headers, Mapping):
            raise InvalidArgumentError("headers must be a mapping")
        _check_headers(headers)
    request = Request(
        method=method,
        template=template,
        api=api,
        params=params,
        base_url=normalize_base_url(base_url) if base_url else default_base_url,
        json=json_value,
        has_json=json_value is not None,
        xml=options.get("xml"),
        query=options.get("query"),
        headers=dict(headers) if headers else {},
        body=options.get("body"),
        security=bool(options.get("security", False)),
        nonceless=bool(options.get("nonceless", False)),
        sink=options.get("sink"),
        timeout=options.get("timeout"),
        extensions=options.get("extensions"),
    )
    if "deadline" in options:
        request.deadline = check_deadline(options["deadline"])
    else:
        request.deadline = default_deadline
    retry, idempotent = options.get("retry"), options.get("idempotent")
    if retry is not None or idempotent is not None:
        check_call_options(retry, idempotent)
        request.retry, request.idempotent = retry, idempotent
    if headers:
        # The SDK's own headers then merge with the caller's case-insensitively (headers.py).
        request.state["user_headers"] = True
    _check_body(request)
    return request

#: What users of httpx/requests reach for, and what this SDK calls it.
_INSTEAD = {
    "params": "query=",
    "data": "{body}",
    "content": "body=",
    "files": "body=UploadForm(path) (or client.media.upload)",
    "stream": "sink= (a path or a binary file) to stream the answer",
    "auth": "nothing: requests are signed by the client",
    "cookies": "headers=",
    "follow_redirects": "nothing: WeChat Pay does not redirect API calls",
    "verify": "Client(verify=...)",
    "cert": "Client(merchant_cert=..., merchant_key=...) with security=True",
    "proxy": "Client(proxy=...)",
    "proxies": "Client(proxy=...)",
    "url": "the chain (client.v3...) or base_url=",
    "method": "the verb (.get(), .post(), ...)",
}


def _suggest(unknown: set[str], api: str) -> str:
    hints = []
    for name in sorted(unknown):
        instead = _INSTEAD.get(name)
        if instead is not None:
            body = "xml= (APIv2 fields) or body=" if api == "v2" else "json= (or body= for bytes)"
            hints.append(f"{name}= -> use {instead.format(body=body)}")
    return "; " + "; ".join(hints) if hints else ""


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_timeout(value: Any) -> bool:
    if value is None or _is_number(value) or isinstance(value, httpx.Timeout):
        return value is None or isinstance(value, httpx.Timeout) or value >= 0
    return isinstance(value, tuple) and len(value) == 4 and all(
        v is None or (_is_number(v) and v >= 0) for v in value
    )


_TYPE_CHECKS: dict[str, tuple[Any, str]] = {
    "timeout": (_check_timeout, "seconds (a number >= 0), None or an httpx.Timeout"),
    "security": (lambda v: isinstance(v, bool), "True or False"),
    "nonceless": (lambda v: isinstance(v, bool), "True or False"),
    "extensions": (lambda v: v is None or isinstance(v, Mapping), "a mapping"),
    "base_url": (lambda v: v is None or isinstance(v, str), "a str URL"),
    "base_uri": (lambda v: v is None or isinstance(v, str), "a str URL"),
    "body": (
        lambda v: not isinstance(v, Mapping | int | float),
        "bytes, str, an (async) iterable of bytes or an UploadForm; a dict goes in json= "
        "(APIv3) or xml= (APIv2)",
    ),
    "query": (lambda v: v is None or isinstance(v, Mapping), "a mapping of name -> value"),
    "sink": (
        lambda v: v is None
        or isinstance(v, str | os.PathLike | Sink)
        or callable(getattr(v, "write", None)),
        "a path, a binary file open for writing, or a Sink",
    ),
    "xml": (lambda v: v is None or isinstance(v, Mapping), "a mapping of field -> value"),
}
_TYPED = frozenset(_TYPE_CHECKS)


def _check_type(name: str, value: Any) -> None:
    check, expected = _TYPE_CHECKS[name]
    if not check(value):
        raise InvalidArgumentError(f"{name}= must be {expected}, got {type(value).__name__}")


def _check_raw_body(request: Request) -> None:
    """``body=``: what is signed must be what is sent."""
    body = request.body
    if isinstance(body, bytes | str | UploadForm):
        return
    if isinstance(body, bytearray | memoryview):
        request.body = bytes(body)
        return
    if isinstance(body, AsyncIterable):
        # Sent as a stream. APIv3 signs the body, so the signer refuses it unless a
        # middleware said which bytes to sign (request.state["signed_body"]).
        return
    if isinstance(body, Iterable):
        # Chunks in memory (a list, a generator): joined, so the signature covers exactly
        # the bytes sent (an async client cannot send a sync iterable anyway).
        chunks = list(body)
        if not all(isinstance(chunk, bytes | bytearray | memoryview) for chunk in chunks):
            raise InvalidArgumentError("body= chunks must be bytes")
        request.body = b"".join(chunks)
        return
    raise InvalidArgumentError(
        f"body= must be bytes or str, an iterable of bytes chunks, or an UploadForm; got "
        f"{type(body).__name__}"
    )


def _check_body(request: Request) -> None:
    given = [n for n in ("json", "xml", "body") if getattr(request, n) is not None]
    if len(given) > 1:
        raise InvalidArgumentError(f"give one of json=, xml=, body=; got {given}")
    if request.body is not None:
        _check_raw_body(request)
    if request.api == "v3":
        for name in ("xml", "security", "nonceless"):
            if getattr(request, name):
                raise InvalidArgumentError(
                    f"{name}= is for APIv2 (v2/...) requests, not {request.template!r}"
                )
    elif request.has_json:
        raise InvalidArgumentError(
            f"json= is for APIv3; {request.template!r} is APIv2: use xml="
        )
    if request.query is not None and not isinstance(request.query, Mapping):
        raise InvalidArgumentError("query must be a mapping")
    if request.xml is not None and not isinstance(request.xml, Mapping):
        raise InvalidArgumentError("xml must be a mapping of field -> value")


def _check_headers(headers: Mapping[Any, Any]) -> None:
    """Header names and values are ASCII ``str`` or ``bytes``; the value is never echoed."""
    for name, value in headers.items():
        if not isinstance(name, str | bytes) or not isinstance(value, str | bytes):
            raise InvalidArgumentError(
                f"headers must map str to str; got {type(name).__name__} -> "
                f"{type(value).__name__} for {str(name)[:40]!r}"
            )
        if not name.isascii() or not value.isascii():
            raise InvalidArgumentError(f"header {name[:40]!r} must be ASCII (name and value)")
