"""A verb's keyword options, checked and turned into the ``Request`` the pipeline carries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from ._config import normalize_base_url
from ._exceptions import InvalidArgumentError
from .middlewares.deadline import check_deadline
from .middlewares.retry import check_call_options
from .protocol.request import Request
from .protocol.template import placeholders

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
            f"one of its placeholders {list(placeholders(template))}"
        )
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
    _check_body(request)
    return request

def _check_body(request: Request) -> None:
    given = [n for n in ("json", "xml", "body") if getattr(request, n) is not None]
    if len(given) > 1:
        raise InvalidArgumentError(f"give one of json=, xml=, body=; got {given}")
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
