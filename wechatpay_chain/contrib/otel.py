"""OpenTelemetry tracing: one client span per call, whatever transport sends it.

    from wechatpay_chain.contrib.otel import Tracing

    client = client.insert("tracing", Tracing())          # outermost: one span per call

httpx instrumentations hook ``AsyncClient.send`` or httpx's transport; the SDK's hot path
hands requests to its own engine directly, so they would see nothing. This middleware makes
the span itself. Inserted outermost it covers the whole call (retries, rate-limit waits,
signing, verification); ``after="limiter"`` (or ``before="signer"``) gives one span per
attempt instead.

What a span carries: the method, the *template* (``url.template``, never the expanded path,
which holds openids and order numbers), the host, the status, WeChat Pay's ``Request-ID`` and
error code, and the exception type on failure. Never a body, a header value, a query or a
secret. Needs ``opentelemetry-api`` (the ``[otel]`` extra); without an SDK configured the
spans are no-ops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from .._exceptions import APIError

if TYPE_CHECKING:
    from ..middlewares.pipeline import Handler, Request

__all__ = ["Tracing"]

try:
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "wechatpay_chain.contrib.otel needs opentelemetry-api: "
        "pip install 'wechatpay-chain[otel]'"
    ) from exc


class Tracing:
    """``tracing``: a client span named ``WeChat Pay <METHOD> <template>`` per call."""

    __slots__ = ("_tracer",)

    def __init__(self, tracer_provider: Any = None) -> None:
        self._tracer = trace.get_tracer("wechatpay_chain", tracer_provider=tracer_provider)

    def __repr__(self) -> str:
        return "<Tracing>"

    async def __call__(self, request: Request, call_next: Handler) -> httpx.Response:
        attributes: dict[str, Any] = {
            "http.request.method": request.method,
            "url.template": request.template,
            "wechatpay.api": request.api,
        }
        name = f"WeChat Pay {request.method} {request.template}"
        with self._tracer.start_as_current_span(
            name, kind=SpanKind.CLIENT, attributes=attributes, record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                response = await call_next(request)
            except APIError as error:
                self._answered(span, error.response)
                if error.code:
                    span.set_attribute("wechatpay.code", error.code)
                span.set_attribute("error.type", error.code or type(error).__name__)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                raise
            except BaseException as error:
                span.set_attribute("error.type", type(error).__name__)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                raise
            self._answered(span, response)
            return response

    @staticmethod
    def _answered(span: Any, response: httpx.Response) -> None:
        span.set_attribute("http.response.status_code", response.status_code)
        request = response._request
        if request is not None:
            span.set_attribute("server.address", request.url.host)
        request_id = response.headers.get("Request-ID")
        if request_id:
            span.set_attribute("wechatpay.request_id", request_id)
