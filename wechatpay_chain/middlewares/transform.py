"""The ``transformer`` stage: request bodies encoded (JSON, multipart), error answers raised."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx

from .._exceptions import InvalidArgumentError
from ..protocol.headers import put_default
from ..protocol.request import Request
from ..protocol.sensitive import serial_header
from .errors import raise_v2_failure, v3_error
from .pipeline import Handler
from .upload import UploadForm

if TYPE_CHECKING:
    from .._config import Config

__all__ = ["DecodeAnswer", "dumps"]

_JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


def _text_body(body: Any) -> Any:
    if isinstance(body, str):
        return body.encode("utf-8")
    return body


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, non-ASCII kept as is: the exact bytes that are signed and sent."""
    try:
        return _ENCODER.encode(value).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"json body cannot be serialised: {exc}") from None


class DecodeAnswer:
    """``transformer``: encodes the JSON body, turns 4xx/5xx answers into APIError.

    A JSON body holding values from ``client.encrypt`` gets the ``Wechatpay-Serial`` header
    of the key they were encrypted with.
    """

    def __init__(self, config: Config | None = None) -> None:
        self._config = config

    async def __call__(self, request: Request, call_next: Handler) -> httpx.Response:
        if request.api == "v3":
            if request.has_json:
                request.content = dumps(request.json)
                given = request.headers
                if given:
                    for name, value in _JSON_HEADERS.items():
                        put_default(given, name, value)
                else:
                    request.headers = _JSON_HEADERS.copy()
                if self._config is not None and self._config.encrypted:
                    self._mark_serial(request)
            elif isinstance(request.body, UploadForm):
                await request.body.prepare(request)  # multipart; signed over its meta JSON
            else:
                request.content = _text_body(request.body)
                put_default(request.headers, "Accept", "application/json")
            response = await call_next(request)
            if response.status_code >= 400:
                raise v3_error(response)
            return response
        if isinstance(request.body, UploadForm):
            await request.body.prepare(request)  # multipart; the signer seals its fields
        if request.method != "GET":
            put_default(request.headers, "Content-Type", "text/xml; charset=utf-8")
        response = await call_next(request)
        raise_v2_failure(request, response)
        return response


    @staticmethod
    def _mark_serial(request: Request) -> None:
        given = next(
            (v for k, v in request.headers.items() if k.lower() == "wechatpay-serial"), None
        )
        serial = serial_header(request.json, given)
        if serial is not None and given is None:
            request.headers["Wechatpay-Serial"] = serial
