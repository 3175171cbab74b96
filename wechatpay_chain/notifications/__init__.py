"""Notifications (webhooks): verify, decrypt, de-duplicate and answer what WeChat Pay posts.

    notification = client.notifications.parse(request_headers, raw_body_bytes)
    notification.event_type, notification.resource["out_trade_no"]

Three kinds arrive on a merchant's notify URLs:

- ``"v3"``: JSON, signed over ``TIMESTAMP\\nNONCE\\nBODY\\n`` with a platform key named by
  ``Wechatpay-Serial``, its ``resource`` sealed by AES-256-GCM under the APIv3 key;
- ``"v2_pay"``: APIv2 XML payment results, signed with the APIv2 secret (MD5 or HMAC-SHA256);
- ``"v2_refund"``: APIv2 XML refund results, unsigned, whose ``req_info`` is AES-256-ECB under
  ``md5(secret)``.

Anything that does not check out raises :class:`~wechatpay_chain.NotificationError` with a
``reason``; nothing is ever returned half-verified. :meth:`Notifications.handle` runs a handler
and produces the exact answer WeChat Pay expects (an :class:`Answer`), with optional
de-duplication by notification id (:class:`Deduplicator`, :class:`MemoryDeduplicator`).
The FastAPI and aiohttp helpers in ``wechatpay_chain.contrib`` are thin shells around it.

Logging (logger ``wechatpay_chain.notifications``) names the kind and the reason of a rejection;
it never carries a decrypted field, a key or the body.
"""

from .answers import ACK_V2, ACK_V3, Answer
from .dedup import Claim, Deduplicator, MemoryDeduplicator, finish_shielded
from .models import (
    AnyNotification,
    Kind,
    Notification,
    V2PayNotification,
    V2RefundNotification,
)
from .verify import HeadersLike, Notifications, log_rejection

__all__ = [
    "ACK_V2",
    "ACK_V3",
    "Answer",
    "AnyNotification",
    "Claim",
    "Deduplicator",
    "HeadersLike",
    "Kind",
    "MemoryDeduplicator",
    "Notification",
    "Notifications",
    "V2PayNotification",
    "V2RefundNotification",
    "finish_shielded",
    "log_rejection",
]
