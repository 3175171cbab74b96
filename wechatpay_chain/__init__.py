"""wechatpay-chain: asyncio-native, chainable SDK for the WeChat Pay merchant APIs.

    client = Client(mchid=..., serial=..., private_key=..., certs={...})
    resp = await client.v3.pay.transactions.native.post(json={...})

The names here are what users construct or catch. The pipeline's types and stages live in
``wechatpay_chain.middlewares``, the service objects in ``wechatpay_chain.services``,
notifications in ``wechatpay_chain.notifications``; ARCHITECTURE.md draws the layers.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from ._chain import Chain, Verb
from ._client import DEFAULT_BASE_URL, Client, Config
from ._exceptions import (
    APIError,
    ClientClosedError,
    DeadlineExceeded,
    DecryptionError,
    InvalidArgumentError,
    NotificationError,
    PublicKeyOnlyError,
    VerificationError,
    WechatpayError,
)
from .crypto.platform import PlatformKey, PlatformKeys
from .middlewares.logging import MetricsHook
from .middlewares.ratelimit import RateLimit
from .middlewares.retry import BACKUP_BASE_URL, RetryPolicy
from .middlewares.upload import UploadForm
from .protocol.certificates import PlatformCertificate
from .protocol.formatter import Formatter
from .protocol.transformer import Transformer
from .services.batch import BatchCall, BatchSummary
from .services.bill_csv import BillReader, read_bill
from .services.journal import Journal, JournalRow
from .transport.sink import Sink

__all__ = [
    "BACKUP_BASE_URL",
    "DEFAULT_BASE_URL",
    "APIError",
    "BatchCall",
    "BatchSummary",
    "BillReader",
    "Chain",
    "Client",
    "ClientClosedError",
    "Config",
    "DeadlineExceeded",
    "DecryptionError",
    "Formatter",
    "InvalidArgumentError",
    "Journal",
    "JournalRow",
    "MetricsHook",
    "NotificationError",
    "PlatformCertificate",
    "PlatformKey",
    "PlatformKeys",
    "PublicKeyOnlyError",
    "RateLimit",
    "RetryPolicy",
    "Sink",
    "Transformer",
    "UploadForm",
    "Verb",
    "VerificationError",
    "WechatpayError",
    "read_bill",
]
__version__ = "0.2.0"

#: Names that moved out of the top level: still importable from here, with a warning.
_MOVED = {
    "AutoRefresh": "wechatpay_chain.services",
    "Batches": "wechatpay_chain.services",
    "Bills": "wechatpay_chain.services",
    "Certificates": "wechatpay_chain.services",
    "Media": "wechatpay_chain.services",
    "DecodeAnswer": "wechatpay_chain.middlewares",
    "ExpandTemplate": "wechatpay_chain.middlewares",
    "SignRequest": "wechatpay_chain.middlewares",
    "VerifyAnswer": "wechatpay_chain.middlewares",
    "Handler": "wechatpay_chain.middlewares",
    "Middleware": "wechatpay_chain.middlewares",
    "Request": "wechatpay_chain.middlewares",
    "Stack": "wechatpay_chain.middlewares",
    "RequestLog": "wechatpay_chain.middlewares",
}


def __getattr__(name: str) -> Any:
    home = _MOVED.get(name)
    if home is None:
        raise AttributeError(f"module 'wechatpay_chain' has no attribute {name!r}")
    warnings.warn(
        f"wechatpay_chain.{name} moved: import it from {home}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(home), name)
