"""The ``logger`` middleware: one log line and one metrics call per HTTP exchange.

A line names the method, the *template* (never the expanded path, which holds openids and
order numbers), the status or the transport error's type, WeChat Pay's code for a failure, the
Request-ID and the duration. Bodies, headers and secrets are never logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from ..protocol import jsonsafe
from ..protocol import v2 as _v2
from .pipeline import Handler, Request

__all__ = ["MetricsHook", "RequestLog"]

#: ``(method, template, status, duration_seconds, request_id, error)``; ``status`` and
#: ``request_id`` are None when no answer came, ``error`` is None when one did.
MetricsHook = Callable[[str, str, "int | None", float, "str | None", "BaseException | None"], None]

_logger = logging.getLogger("wechatpay_chain")


class RequestLog:
    """``logger``: logs each exchange on the ``wechatpay_chain`` logger and feeds ``metrics``.

    It sits right above the signer, so with a retry policy each attempt gets its own line
    (with ``attempt=N`` from the second on) and the duration covers signing, the exchange and
    the answer's verification, not waits for a rate limit. When the level is disabled and no
    hook is set, it costs one ``isEnabledFor`` call.
    """

    __slots__ = ("_level", "_logger", "_metrics")

    def __init__(
        self,
        *,
        metrics: MetricsHook | None = None,
        logger: logging.Logger | None = None,
        level: int = logging.INFO,
    ) -> None:
        if metrics is not None and not callable(metrics):
            from .._exceptions import InvalidArgumentError

            raise InvalidArgumentError(f"metrics must be callable, got {type(metrics).__name__}")
        self._metrics = metrics
        self._logger = logger or _logger
        self._level = level

    def __repr__(self) -> str:
        return f"<RequestLog logger={self._logger.name!r} metrics={self._metrics is not None}>"

    async def __call__(self, request: Request, call_next: Handler) -> httpx.Response:
        if self._metrics is None and not self._logger.isEnabledFor(self._level):
            return await call_next(request)
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as exc:
            self._record(request, None, time.perf_counter() - started, None, exc)
            raise
        self._record(
            request,
            response,
            time.perf_counter() - started,
            response.headers.get("Request-ID"),
            None,
        )
        return response

    def _record(
        self,
        request: Request,
        response: httpx.Response | None,
        duration: float,
        request_id: str | None,
        error: BaseException | None,
    ) -> None:
        status = response.status_code if response is not None else None
        metrics = self._metrics
        if metrics is not None:
            try:
                metrics(request.method, request.template, status, duration, request_id, error)
            except Exception as exc:  # a broken hook must not fail a payment
                self._logger.warning(
                    "metrics hook %r failed: %s", metrics, type(exc).__name__, exc_info=True
                )
        logger = self._logger
        if not logger.isEnabledFor(self._level):
            return
        if response is not None:
            outcome = str(status)
            code = _failure_code(request, response)
            if code:
                outcome += " " + code
        else:
            outcome = type(error).__name__
        attempt = request.state.get("attempt", 1)
        logger.log(
            self._level,
            "%s %s %s %.1fms Request-ID=%s%s",
            request.method,
            request.template,
            outcome,
            duration * 1000.0,
            request_id or "-",
            f" attempt={attempt}" if attempt != 1 else "",
            extra={
                "wechatpay": {
                    "method": request.method,
                    "template": request.template,
                    "status": status,
                    "duration": duration,
                    "request_id": request_id,
                    "error": type(error).__name__ if error is not None else None,
                    "attempt": attempt,
                }
            },
        )


def _failure_code(request: Request, response: httpx.Response) -> str | None:
    """WeChat Pay's error code of a failed answer (a fixed identifier, never personal data)."""
    if request.api == "v2":
        fields: Any = request.state.get("answer")
        failed = _v2.answer_failure(fields) if isinstance(fields, dict) else None
        return (failed.get("err_code") or failed.get("return_code") or "FAIL") if failed else None
    if response.status_code < 400:
        return None
    try:
        data = jsonsafe.loads(response.content)
    except (ValueError, RecursionError, httpx.ResponseNotRead, UnicodeDecodeError):
        return None
    code = data.get("code") if isinstance(data, dict) else None
    # Text or a number only: anything else is not WeChat Pay's, and may be costly to print.
    return str(code)[:200] if isinstance(code, str | int) and not isinstance(code, bool) else None
