"""wechatpay-chain: asyncio-native, chainable SDK for the WeChat Pay merchant APIs.

client = Client(mchid=..., serial=..., private_key=..., certs={...})
resp = await client.v3.pay.transactions.native.post(json={...})
"""

from ._batch import BatchCall, Batches, BatchSummary
from ._bill_csv import BillReader, read_bill
from ._bills import Bills
from ._certificates import AutoRefresh, Certificates, PlatformCertificate, PublicKeyOnlyError
from ._chain import Chain, Verb
from ._client import DEFAULT_BASE_URL, Client, Config
from ._exceptions import (
    APIError,
    DeadlineExceeded,
    DecryptionError,
    InvalidArgumentError,
    NotificationError,
    VerificationError,
    WechatpayError,
)
from ._formatter import Formatter
from ._journal import Journal, JournalRow
from ._logging import MetricsHook, RequestLog
from ._media import Media, UploadForm
from ._middlewares import DecodeAnswer, ExpandTemplate, SignRequest, VerifyAnswer
from ._pipeline import Handler, Middleware, Request, Stack
from ._platform import PlatformKey, PlatformKeys
from ._ratelimit import RateLimit
from ._retry import BACKUP_BASE_URL, RetryPolicy
from ._sink import Sink
from ._transformer import Transformer

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
    "DeadlineExceeded",
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
