"""The request pipeline: the named stack and its stages.

A middleware is an async callable ``(request, call_next) -> httpx.Response``. A client's
default stack is ``template -> transformer -> signer -> verifier``; ``retry``, ``limiter``
and ``logger`` join it when configured. ``client.middlewares`` lists a client's stack;
``client.replace/insert/without`` derive clients with another one.
"""

from .logging import MetricsHook, RequestLog
from .pipeline import Handler, Middleware, Request, Stack
from .ratelimit import RateLimit
from .retry import BACKUP_BASE_URL, RetryPolicy
from .sign import RsaSigner, SignRequest
from .stack import default_stack
from .template import ExpandTemplate
from .transform import DecodeAnswer
from .upload import UploadForm
from .verify import VerifyAnswer

__all__ = [
    "BACKUP_BASE_URL",
    "DecodeAnswer",
    "ExpandTemplate",
    "Handler",
    "MetricsHook",
    "Middleware",
    "RateLimit",
    "Request",
    "RequestLog",
    "RetryPolicy",
    "RsaSigner",
    "SignRequest",
    "Stack",
    "UploadForm",
    "VerifyAnswer",
    "default_stack",
]
