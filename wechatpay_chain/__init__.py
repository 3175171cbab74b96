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
from ._formatter import Formatter
from ._middlewares import DecodeAnswer, ExpandTemplate, SignRequest, VerifyAnswer
from ._pipeline import Handler, Middleware, Request, Stack
from ._platform import PlatformKey, PlatformKeys
from ._transformer import Transformer

__all__ = [
    "DEFAULT_BASE_URL",
    "APIError",
    "Chain",
    "Client",
    "Config",
    "DecodeAnswer",
    "DecryptionError",
    "ExpandTemplate",
    "Formatter",
    "Handler",
    "InvalidArgumentError",
    "Middleware",
    "NotificationError",
    "PlatformKey",
    "PlatformKeys",
    "Request",
    "SignRequest",
    "Stack",
    "Transformer",
    "Verb",
    "VerificationError",
    "VerifyAnswer",
    "WechatpayError",
]
__version__ = "0.1.0"
