"""wechatpay-chain: asyncio-native, chainable SDK for the WeChat Pay merchant APIs.

    client = Client(mchid=..., serial=..., private_key=..., certs={...})
    resp = await client.v3.pay.transactions.native.post(json={...})
"""

from ._chain import Chain, Verb
from ._client import DEFAULT_BASE_URL, Client, Config
from ._exceptions import (
    APIError,
    DecryptionError,
    InvalidArgumentError,
    NotificationError,
    VerificationError,
    WechatpayError,
)
from .crypto.platform import PlatformKey, PlatformKeys
from .middlewares.logging import MetricsHook, RequestLog
from .middlewares.pipeline import Handler, Middleware, Request, Stack
from .middlewares.ratelimit import RateLimit
from .middlewares.retry import BACKUP_BASE_URL, RetryPolicy
from .middlewares.stages import DecodeAnswer, ExpandTemplate, SignRequest, VerifyAnswer
from .protocol.formatter import Formatter
from .protocol.transformer import Transformer
from .services.batch import BatchCall, Batches, BatchSummary
from .services.bill_csv import BillReader, read_bill
from .services.bills import Bills
from .services.certificates import (
    AutoRefresh,
    Certificates,
    PlatformCertificate,
    PublicKeyOnlyError,
)
from .services.journal import Journal, JournalRow
from .services.media import Media, UploadForm
from .transport.sink import Sink

__all__ = [
    "BACKUP_BASE_URL",
    "DEFAULT_BASE_URL",
    "APIError",
    "AutoRefresh",
    "BatchCall",
    "BatchSummary",
    "Batches",
    "BillReader",
    "Bills",
    "Certificates",
    "Chain",
    "Client",
    "Config",
    "DecodeAnswer",
    "DecryptionError",
    "ExpandTemplate",
    "Formatter",
    "Handler",
    "InvalidArgumentError",
    "Journal",
    "JournalRow",
    "Media",
    "MetricsHook",
    "Middleware",
    "NotificationError",
    "PlatformCertificate",
    "PlatformKey",
    "PlatformKeys",
    "PublicKeyOnlyError",
    "RateLimit",
    "Request",
    "RequestLog",
    "RetryPolicy",
    "SignRequest",
    "Sink",
    "Stack",
    "Transformer",
    "UploadForm",
    "Verb",
    "VerificationError",
    "VerifyAnswer",
    "WechatpayError",
    "read_bill",
]
__version__ = "0.1.0"
