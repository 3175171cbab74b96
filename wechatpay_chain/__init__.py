"""wechatpay-chain: asyncio-native, chainable SDK for the WeChat Pay merchant APIs."""

from ._exceptions import (
    APIError,
    DecryptionError,
    InvalidArgumentError,
    NotificationError,
    VerificationError,
    WechatpayError,
)

__all__ = [
    "APIError",
    "DecryptionError",
    "InvalidArgumentError",
    "NotificationError",
    "VerificationError",
    "WechatpayError",
]
__version__ = "0.1.0"
