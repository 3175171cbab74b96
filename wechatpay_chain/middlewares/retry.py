"""Retrying failed calls: which failures, which requests, how long to wait, where to go.

``RetryPolicy`` is both the configuration and the ``retry`` middleware. It sits between the
transformer and the signer, so every attempt is signed afresh (new nonce and timestamp) and
the policy sees the raw answer before the transformer turns it into an ``APIError``.

What is retried:

- a request that never left (connect error, connect or pool timeout), whatever its method:
  not a byte of it reached WeChat Pay (``retry_unsent=False`` turns this off);
- no answer or a cut answer (read/write error or timeout, the server hung up), an answer with
  a status in ``statuses`` (429, 500, 502, 503, 504) or a WeChat Pay code in ``codes``
  (FREQUENCY_LIMITED, SYSTEM_ERROR; APIv2 SYSTEMERROR, FREQ_LIMIT): idempotent requests only.

Never retried: a failed verification, any other 4xx, a body that is a one-shot stream, and an
answer already streamed into a file object (``sink=``).

Which requests are idempotent (``RetryPolicy.is_idempotent``):

- the call says so: ``idempotent=True`` or ``idempotent=False`` wins;
- GET, HEAD, OPTIONS, PUT and DELETE (RFC 9110);
- a POST or PATCH whose JSON body (APIv3), XML fields (APIv2) or path placeholders carry a
  merchant-side number WeChat Pay deduplicates on: any ``out_…_no`` (``out_trade_no``,
  ``out_refund_no``, ``out_request_no``, ``out_batch_no``, ``out_order_no``,
  ``combine_out_trade_no``…), ``mch_billno`` or ``partner_trade_no``.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any

import anyio
import httpx

from .._exceptions import InvalidArgumentError
from ..protocol import jsonsafe
from ..protocol import v2 as _v2
from .errors import answer_fields
from .pipeline import Handler, Request, Sleep
from .template import locate

__all__ = [
    "BACKUP_BASE_URL",
    "IDEMPOTENCY_FIELDS",
    "RETRY_CODES",
    "RETRY_STATUSES",
    "RetryPolicy",
    "check_call_options",
]

log = logging.getLogger("wechatpay_chain.retry")

#: WeChat Pay's backup domain, for ``failover=True`` from the default ``base_url``.
BACKUP_BASE_URL = "https://api2.mch.weixin.qq.com/"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_CODES = frozenset({"FREQUENCY_LIMITED", "SYSTEM_ERROR", "SYSTEMERROR", "FREQ_LIMIT"})
#: Request numbers WeChat Pay deduplicates on that do not follow the ``out_…_no`` pattern.
IDEMPOTENCY_FIELDS = frozenset({"mch_billno", "partner_trade_no"})
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_OUT_NO = re.compile(r"(?:^|_)out_\w*no\Z")

# The request never left: safe to send again whatever it does.
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Sent (or maybe sent), and the answer is missing or cut.
_UNANSWERED = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)



@lru_cache(maxsize=512)
def _is_request_number(name: str) -> bool:
    return name in IDEMPOTENCY_FIELDS or _OUT_NO.search(name) is not None


def _carries_request_number(fields: Any) -> bool:
    if not isinstance(fields, Mapping):
        return False
    for name, value in fields.items():
        if (
            isinstance(name, str)
            and _is_request_number(name)
            and isinstance(value, str | int)
            and str(value)
        ):
            return True
    return False


def _retry_after(response: httpx.Response | None) -> float:
    if response is None:
        return 0.0
    value = response.headers.get("Retry-After")
    if not value:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        return 0.0  # the HTTP-date form: rare, and our own backoff is a fine answer to it
    return seconds if seconds > 0 else 0.0


def _add_note(error: BaseException, note: str) -> None:
    add = getattr(error, "add_note", None)  # Python 3.11+
    if add is not None:
        add(note)


class RetryPolicy:
    """When and how often to send a failed call again (and the ``retry`` middleware).

    The n-th retry waits ``backoff * multiplier ** (n - 1)`` seconds, at most ``max_backoff``,
    shortened by a random fraction of up to ``jitter`` so that many clients do not retry in
    step; a longer ``Retry-After`` is honoured up to ``max_backoff``. No attempt starts once
    ``deadline`` seconds have passed since the first (an attempt under way is bounded by the
    ``timeout=`` of the call). ``max_attempts`` counts the first attempt too.

    ``failover=True`` sends a call that could not connect to the default domain to
    ``api2.mch.weixin.qq.com`` at once, and keeps sending there for ``failover_cooldown``
    seconds; a mapping ``{primary_base_url: backup_base_url}`` names other pairs.

    ``sleep``, ``clock`` and ``random`` can be replaced, e.g. by a fake clock in tests.
    """

    __slots__ = (
        "_clock",
        "_down",
        "_failover",
        "_random",
        "_sleep",
        "backoff",
        "codes",
        "deadline",
        "failover_cooldown",
        "jitter",
        "max_attempts",
        "max_backoff",
        "multiplier",
        "retry_unsent",
        "statuses",
    )

    def __init__(
        self,
        *,
        max_attempts: int = 4,
        backoff: float = 0.5,
        multiplier: float = 2.0,
        max_backoff: float = 8.0,
        jitter: float = 0.5,
        deadline: float | None = 30.0,
        statuses: Iterable[int] = RETRY_STATUSES,
        codes: Iterable[str] = RETRY_CODES,
        retry_unsent: bool = True,
        failover: bool | Mapping[str, str] = False,
        failover_cooldown: float = 30.0,
        sleep: Sleep | None = None,
        clock: Callable[[], float] | None = None,
        random: Callable[[], float] | None = None,
    ) -> None:
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise InvalidArgumentError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
        for name, value, low in (
            ("backoff", backoff, 0.0),
            ("multiplier", multiplier, 1.0),
            ("max_backoff", max_backoff, 0.0),
            ("failover_cooldown", failover_cooldown, 0.0),
        ):
            if not isinstance(value, int | float) or value < low:
                raise InvalidArgumentError(f"{name} must be a number >= {low}, got {value!r}")
        if not isinstance(jitter, int | float) or not 0.0 <= jitter <= 1.0:
            raise InvalidArgumentError(f"jitter must be between 0 and 1, got {jitter!r}")
        if deadline is not None and (not isinstance(deadline, int | float) or deadline <= 0):
            raise InvalidArgumentError(f"deadline must be a number > 0 or None, got {deadline!r}")
        self.max_attempts = max_attempts
        self.backoff = float(backoff)
        self.multiplier = float(multiplier)
        self.max_backoff = float(max_backoff)
        self.jitter = float(jitter)
        self.deadline = None if deadline is None else float(deadline)
        self.statuses = frozenset(statuses)
        self.codes = frozenset(codes)
        self.retry_unsent = bool(retry_unsent)
        self._failover = self._pairs(failover)
        self.failover_cooldown = float(failover_cooldown)
        self._sleep: Sleep = sleep or anyio.sleep
        self._clock = clock or time.monotonic
        self._random = random or _random_fraction
        #: primary base URL -> clock time until which calls go straight to its backup.
        self._down: dict[str, float] = {}

    @staticmethod
    def _pairs(failover: bool | Mapping[str, str]) -> dict[str, str]:
        from .._config import DEFAULT_BASE_URL, normalize_base_url

        if failover is True:
            return {DEFAULT_BASE_URL: BACKUP_BASE_URL}
        if failover is False:
            return {}
        if not isinstance(failover, Mapping):
            raise InvalidArgumentError(
                "failover must be True, False or a mapping {primary_base_url: backup_base_url}"
            )
        return {
            normalize_base_url(primary, "failover primary"): normalize_base_url(
                backup, "failover backup"
            )
            for primary, backup in failover.items()
        }

    @property
    def failover(self) -> Mapping[str, str]:
        """``{primary_base_url: backup_base_url}`` (empty when failover is off)."""
        return dict(self._failover)

    def __repr__(self) -> str:
        return (
            f"<RetryPolicy max_attempts={self.max_attempts} backoff={self.backoff} "
            f"max_backoff={self.max_backoff} deadline={self.deadline} "
            f"failover={sorted(self._failover)}>"
        )

    # --- decisions (pure, testable) ------------------------------------------------------
    def is_idempotent(self, request: Request) -> bool:
        """Whether sending ``request`` twice has the effect of sending it once (see module doc)."""
        if request.idempotent is not None:
            return bool(request.idempotent)
        if request.method in _IDEMPOTENT_METHODS:
            return True
        return (
            _carries_request_number(request.json if request.has_json else None)
            or _carries_request_number(request.xml)
            or _carries_request_number(request.params)
        )

    def delay(self, retry: int, response: httpx.Response | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        base = min(self.max_backoff, self.backoff * self.multiplier ** (retry - 1))
        if self.jitter:
            base *= 1.0 - self.jitter * self._random()
        after = _retry_after(response)
        if after > base:
            base = min(after, self.max_backoff)
        return base

    def failure(self, request: Request, response: httpx.Response) -> str | None:
        """Why ``response`` is worth another attempt, or None when it is not."""
        status = response.status_code
        if request.api == "v3":
            if status < 400:
                return None
            code = _v3_code(response)
            if status in self.statuses or (code is not None and code in self.codes):
                return f"HTTP {status} {code}" if code else f"HTTP {status}"
            return None
        if status in self.statuses:
            return f"HTTP {status}"
        try:
            fields = answer_fields(request, response)
        except InvalidArgumentError:
            return None
        failed = _v2.answer_failure(fields) if fields is not None else None
        code = failed.get("err_code") if failed else None
        if code is not None and code in self.codes:
            return f"HTTP {status} {code}"
        return None

    # --- the middleware -----------------------------------------------------------------
    async def __call__(self, request: Request, call_next: Handler) -> httpx.Response:
        chosen = request.retry
        if chosen is None or chosen is True:
            return await self.run(request, call_next)
        if chosen is False:
            return await call_next(request)
        policy: RetryPolicy = chosen
        return await policy.run(request, call_next)

    async def run(self, request: Request, call_next: Handler) -> httpx.Response:
        """Send ``request`` through ``call_next`` until it succeeds or this policy gives up."""
        clock = self._clock
        started = clock()
        content = request.content
        # Each attempt starts from the request as it reached us: inner middlewares may change it.
        if self._down:
            self._route_around(request, started)
        headers, query, state = dict(request.headers), request.query, dict(request.state)
        base_url, url, target = request.base_url, request.url, request.target
        attempt = 1
        while True:
            request.state["attempt"] = attempt
            error: httpx.TransportError | None = None
            response: httpx.Response | None = None
            try:
                response = await call_next(request)
            except _UNSENT as exc:
                error = exc
                reason = type(exc).__name__
            except _UNANSWERED as exc:
                error = exc
                reason = type(exc).__name__
            else:
                failed = self.failure(request, response)
                if failed is None:
                    return response
                reason = failed
            backup = self._next_base_url(request, error)
            refusal = self._refusal(request, error, content, attempt)
            wait = 0.0
            if refusal is None:
                wait = 0.0 if backup is not None else self.delay(attempt, response)
                if self.deadline is not None and clock() - started + wait > self.deadline:
                    refusal = f"the {self.deadline:g} s deadline would pass"
            if refusal is not None:
                if log.isEnabledFor(logging.DEBUG):
                    log.debug(
                        "%s %s: %s, not retried: %s",
                        request.method,
                        request.template,
                        reason,
                        refusal,
                    )
                if error is not None:
                    _add_note(error, f"wechatpay_chain: not retried: {refusal}")
                    raise error
                assert response is not None
                return response  # the transformer raises its APIError
            if response is not None:
                await response.aclose()
            if backup is not None:
                self._down[base_url] = clock() + self.failover_cooldown
                base_url = backup
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "%s %s: %s; attempt %d of %d in %.2f s%s",
                    request.method,
                    request.template,
                    reason,
                    attempt + 1,
                    self.max_attempts,
                    wait,
                    f" at {backup}" if backup else "",
                )
            if wait > 0:
                await self._sleep(wait)
            attempt += 1
            request.headers = dict(headers)
            request.query = query
            request.content = content
            request.state = dict(state)
            if request.base_url != base_url:
                request.base_url = base_url
                locate(request)
            else:
                request.url, request.target = url, target

    def _refusal(
        self,
        request: Request,
        error: httpx.TransportError | None,
        content: Any,
        attempt: int,
    ) -> str | None:
        """Why the failed attempt must not be repeated, or None when it may be."""
        if attempt >= self.max_attempts:
            return f"{attempt} of {self.max_attempts} attempts made"
        if content is not None and not isinstance(content, bytes | bytearray):
            return "the body is a one-shot stream; pass bytes to make the call retryable"
        if isinstance(error, _UNSENT) and self.retry_unsent:
            return None
        if not self.is_idempotent(request):
            return (
                f"{request.method} is not known to be idempotent: give the call an out_…_no "
                "number or pass idempotent=True"
            )
        sink = request.sink
        if error is not None and sink is not None:
            target = getattr(sink, "target", sink)  # a Sink(...) wraps its path or file
            if not isinstance(target, str | os.PathLike):
                return "part of the answer may already be in the sink file object"
        return None

    def _next_base_url(self, request: Request, error: httpx.TransportError | None) -> str | None:
        if not isinstance(error, _UNSENT) or not self._failover:
            return None
        return self._failover.get(request.base_url)

    def _route_around(self, request: Request, now: float) -> None:
        until = self._down.get(request.base_url)
        if until is None:
            return
        if until <= now:
            self._down.pop(request.base_url, None)
            return
        request.base_url = self._failover[request.base_url]
        locate(request)


def _random_fraction() -> float:
    return random.random()  # jitter, not security


def _v3_code(response: httpx.Response) -> str | None:
    try:
        data = jsonsafe.loads(response.content)
    except (ValueError, RecursionError, httpx.ResponseNotRead, UnicodeDecodeError):
        return None
    code = data.get("code") if isinstance(data, dict) else None
    # Text or a number only: anything else is not WeChat Pay's, and may be costly to print.
    return str(code)[:200] if isinstance(code, str | int) and not isinstance(code, bool) else None


def check_call_options(retry: object, idempotent: object) -> None:
    """Validate the per-call ``retry=`` and ``idempotent=`` options before anything is sent."""
    if retry is not None and not isinstance(retry, bool | RetryPolicy):
        raise InvalidArgumentError(
            f"retry= must be a RetryPolicy, True or False, got {type(retry).__name__}"
        )
    if idempotent is not None and not isinstance(idempotent, bool):
        raise InvalidArgumentError(f"idempotent= must be True or False, got {idempotent!r}")
