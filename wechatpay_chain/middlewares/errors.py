"""Error answers turned into ``APIError``, and the APIv2 answer parsed once per request."""

from __future__ import annotations

from typing import Any

import httpx

from .._exceptions import APIError, InvalidArgumentError, VerificationError
from ..protocol import jsonsafe
from ..protocol import v2 as _v2
from ..protocol.request import Request
from ..protocol.transformer import Transformer

__all__ = ["answer_fields", "json_answer", "raise_v2_failure", "v3_error"]


def answer_fields(request: Request, response: httpx.Response) -> dict[str, Any] | None:
    """The APIv2 answer as a dict (parsed once per request), or None for a non-XML body."""
    cached = request.state.get("answer")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    # A body streamed into the sink is a file; an XML answer to a sink= request (an APIv2
    # download's error) was kept in memory by the sink and is parsed like any other.
    if "sink" in response.extensions or not response.content.lstrip()[:1] == b"<":
        return None
    fields = Transformer.to_dict(response.content)
    request.state["answer"] = fields
    return fields


def json_answer(request: Request, response: httpx.Response) -> Any:
    """The parsed body of a JSON-answering APIv2 endpoint (``getaccesstoken``).

    A body that cannot be read is ``APIError`` on a 4xx/5xx, ``VerificationError`` on a 2xx.
    """
    try:
        return jsonsafe.loads(response.content)
    except (ValueError, RecursionError, httpx.ResponseNotRead):
        if response.status_code >= 400:
            raise APIError(
                response.reason_phrase or "error", request=response.request, response=response
            ) from None
        raise VerificationError(
            f"{request.method} {request.template}: answer is not JSON"
        ) from None


def _raise_json_failure(request: Request, response: httpx.Response) -> None:
    failure = _v2.json_answer_failure(json_answer(request, response))
    if failure is None and response.status_code < 400:
        return
    failure = failure or {"retcode": "", "retmsg": ""}
    raise APIError(
        failure["retmsg"] or response.reason_phrase or "error",
        request=response.request,
        response=response,
        code=failure["retcode"] or None,
    )


def raise_v2_failure(request: Request, response: httpx.Response) -> None:
    if _v2.is_json_answer(request.path) and "sink" not in response.extensions:
        _raise_json_failure(request, response)
        return
    try:
        fields = answer_fields(request, response)
    except InvalidArgumentError:
        fields = None
    if fields is None:
        if response.status_code >= 400:
            raise APIError(
                response.reason_phrase or "error", request=response.request, response=response
            )
        if _v2.is_unsigned_answer(request.path):
            return  # a file (bill) rather than XML
        raise VerificationError(f"{request.method} {request.template}: answer is not XML")
    failure = _v2.answer_failure(fields) if response.status_code < 400 else None
    if response.status_code >= 400 and failure is None:
        failure = _v2.answer_failure(fields) or {"return_code": "FAIL"}
    if failure is None:
        return
    code = failure.get("err_code") or failure.get("return_code")
    message = failure.get("err_code_des") or failure.get("return_msg") or "FAIL"
    raise APIError(
        message,
        request=response.request,
        response=response,
        code=code,
        return_code=failure.get("return_code"),
        return_msg=failure.get("return_msg"),
        err_code=failure.get("err_code"),
        err_code_des=failure.get("err_code_des"),
    )


def v3_error(response: httpx.Response) -> APIError:
    code: str | None = None
    message = response.reason_phrase or "error"
    detail: Any = None
    try:
        data = jsonsafe.loads(response.content) if response.content else None
    except (ValueError, RecursionError, httpx.ResponseNotRead):
        # Not JSON, invalid UTF-8, an over-long number, or nesting deep enough to exhaust
        # the parser: the status alone is reported.
        data = None
    if isinstance(data, dict):
        code = _short_text(data.get("code"))
        message = _short_text(data.get("message")) or message
        detail = data.get("detail")
    return APIError(message, request=response.request, response=response, code=code, detail=detail)


def _short_text(value: Any) -> str | None:
    """``code``/``message`` as text: str and int kept (up to 1000 characters), else None.

    Anything else (a nested structure, a float) is not what WeChat Pay sends there and could
    be made expensive to print, so it is left out rather than turned into text.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return value[:1000] or None
    if isinstance(value, int):
        return str(value) if abs(value) < 10**18 else None
    return None
