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
error code, the attempt number behind a retry policy, and the exception type on failure.
Never a body, a header value, a query or a secret. Metrics: the histogram
``wechatpay.client.duration`` (seconds) and the counter ``wechatpay.client.errors``, both
by method, template and outcome (status and WeChat Pay code, or the error type). Needs
``opentelemetry-api`` (the ``[otel]`` extra); without an SDK configured, both are no-ops.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import httpx

from .._exceptions import APIError

if TYPE_CHECKING:
    from ..middlewares.pipeline import Handler, Request

__all__ = ["Tracing"]

try:
    from opentelemetry import metrics, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "wechatpay_chain.contrib.otel needs opentelemetry-api: "
        "pip install 'wechatpay-chain[otel]'"
    ) from exc


class Tracing:
    """``tracing``: a client span named ``WeChat Pay <METHOD> <template>`` per call."""

    __slots__ = ("_duration", "_errors", "_tracer")

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self._tracer = trace.get_tracer("wechatpay_chain", tracer_provider=tracer_provider)
        meter = metrics.get_meter("wechatpay_chain", meter_provider=meter_provider)
        self._duration = meter.create_histogram(
            "wechatpay.client.duration", unit="s", description="WeChat Pay calls, end to end"
        )
        self._errors = meter.create_counter(
            "wechatpay.client.errors", description="WeChat Pay calls that failed, by code"
        )

    def __repr__(self) -> str:
        return "<Tracing>"

    async def __call__(self, request: Request, call_next: Handler) -> httpx.Response:
        attributes: dict[str, Any] = {
            "http.request.method": request.method,
            "url.template": request.template,
            "wechatpay.api": request.api,
        }
        attempt = request.state.get("attempt")
        if attempt is not None:
            attributes["wechatpay.attempt"] = attempt
        name = f"WeChat Pay {request.method} {request.template}"
        outcome: dict[str, Any] = {
            "http.request.method": request.method,
            "url.template": request.template,
        }
        started = time.perf_counter()
        with self._tracer.start_as_current_span(
            name,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                response = await call_next(request)
            except APIError as error:
                self._answered(span, error.response)
                kind = error.code or type(error).__name__
                if error.code:
                    span.set_attribute("wechatpay.code", error.code)
                outcome["http.response.status_code"] = error.response.status_code
                self._failed(span, outcome, kind, started)
                raise
            except BaseException as error:
                self._failed(span, outcome, type(error).__name__, started)
                raise
            self._answered(span, response)
            outcome["http.response.status_code"] = response.status_code
            self._duration.record(time.perf_counter() - started, outcome)
            return response

    def _failed(self, span: Any, outcome: dict[str, Any], kind: str, started: float) -> None:
        span.set_attribute("error.type", kind)
        span.set_status(Status(StatusCode.ERROR, kind))
        outcome["error.type"] = kind
        self._duration.record(time.perf_counter() - started, outcome)
        self._errors.add(1, outcome)

    @staticmethod
    def _answered(span: Any, response: httpx.Response) -> None:
        span.set_attribute("http.response.status_code", response.status_code)
        request = response._request
        if request is not None:
            span.set_attribute("server.address", request.url.host)
        request_id = response.headers.get("Request-ID")
        if request_id:
            span.set_attribute("wechatpay.request_id", request_id)
