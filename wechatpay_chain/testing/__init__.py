"""A fake WeChat Pay server for tests, demos and benchmarks (install ``wechatpay-chain[testing]``).

    with FakeWechatPay() as server:
        client = server.client()
        resp = client.v3.marketing.favor.users._openid_.coupons.post_sync(openid="o-1", json={...})

It listens on real loopback sockets, checks every request's signature, signs its answers and
can be told to misbehave (``server.misbehave("tamper_body")``).
"""

from ._core import FAULTS, PUBLIC_KEY_ID, FakeRequest, Merchant, Reply
from ._fake import FakeWechatPay
from ._files import FILE_FAULTS, FakeFiles, StoredMedia, make_bill

__all__ = [
    "FAULTS",
    "FILE_FAULTS",
    "PUBLIC_KEY_ID",
    "FakeFiles",
    "FakeRequest",
    "FakeWechatPay",
    "Merchant",
    "Reply",
    "StoredMedia",
    "make_bill",
]
