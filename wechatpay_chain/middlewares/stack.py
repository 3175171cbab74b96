"""The default stacks: what a client's pipeline holds, in which order."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._exceptions import InvalidArgumentError
from .logging import MetricsHook, RequestLog
from .pipeline import Middleware, Stack
from .ratelimit import RateLimit
from .retry import RetryPolicy
from .sign import SignRequest
from .template import ExpandTemplate
from .transform import DecodeAnswer
from .verify import VerifyAnswer

if TYPE_CHECKING:
    from .._config import Config

__all__ = ["default_stack", "resilient_stack"]


def default_stack(config: Config) -> Stack:
    """template -> transformer -> signer -> verifier -> transport."""
    return Stack(
        [
            ("template", ExpandTemplate()),
            ("transformer", DecodeAnswer(config)),
            ("signer", SignRequest(config)),
            ("verifier", VerifyAnswer(config)),
        ]
    )


def _place(stack: Stack, name: str, middleware: Middleware, after: tuple[str, ...]) -> Stack:
    if name in stack.names:
        return stack.replace(name, middleware)
    for anchor in after:
        if anchor in stack.names:
            return stack.insert(name, middleware, after=anchor)
    if "signer" in stack.names:
        return stack.insert(name, middleware, before="signer")
    return stack.insert(name, middleware)


def resilient_stack(
    stack: Stack,
    *,
    retry: RetryPolicy | None = None,
    rate_limit: RateLimit | None = None,
    log_requests: bool = False,
    metrics: MetricsHook | None = None,
) -> Stack:
    """``stack`` with ``retry``, ``limiter`` and ``logger`` in their places.

    transformer -> retry -> limiter -> logger -> signer: every attempt is rate limited, logged
    and signed on its own, and a backoff wait holds no concurrency slot.
    """
    if retry is not None:
        if not isinstance(retry, RetryPolicy):
            raise InvalidArgumentError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
        stack = _place(stack, "retry", retry, ("transformer",))
    if rate_limit is not None:
        if not isinstance(rate_limit, RateLimit):
            raise InvalidArgumentError(
                f"rate_limit must be a RateLimit, got {type(rate_limit).__name__}"
            )
        stack = _place(stack, "limiter", rate_limit, ("retry", "transformer"))
    if log_requests or metrics is not None:
        logger = RequestLog(metrics=metrics)
        if "logger" in stack.names:
            stack = stack.replace("logger", logger)
        elif "signer" in stack.names:
            stack = stack.insert("logger", logger, before="signer")
        else:
            stack = _place(stack, "logger", logger, ("limiter", "retry", "transformer"))
    return stack
