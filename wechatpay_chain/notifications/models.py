"""What a verified notification looks like, for each of the three kinds."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeAlias

from ..protocol import v2 as _v2

__all__ = [
    "KINDS",
    "AnyNotification",
    "Kind",
    "Notification",
    "V2PayNotification",
    "V2RefundNotification",
]

Kind = Literal["v3", "v2_pay", "v2_refund"]
KINDS: tuple[Kind, ...] = ("v3", "v2_pay", "v2_refund")


@dataclass(frozen=True, slots=True)
class Notification:
    """A verified, decrypted APIv3 notification.

    ``resource`` is the decrypted JSON object (payer, amounts, ...): it is left out of the
    ``repr`` so that logging the notification never logs personal data.
    """

    id: str
    create_time: str
    event_type: str
    resource_type: str
    summary: str
    resource: dict[str, Any] = field(repr=False)
    #: ``resource.original_type`` as sent (``transaction``, ``refund``, ...).
    original_type: str = ""

    @property
    def created_at(self) -> datetime:
        """``create_time`` as an aware datetime (WeChat Pay sends RFC 3339, ``+08:00``)."""
        return datetime.fromisoformat(self.create_time)

    @property
    def dedup_key(self) -> str:
        return "v3:" + self.id


@dataclass(frozen=True, slots=True)
class V2PayNotification:
    """A verified APIv2 payment notification: every field was covered by the ``sign``."""

    fields: dict[str, str] = field(repr=False)

    @property
    def transaction_id(self) -> str:
        return self.fields["transaction_id"]

    @property
    def out_trade_no(self) -> str:
        return self.fields["out_trade_no"]

    @property
    def succeeded(self) -> bool:
        """``return_code`` and ``result_code`` are both SUCCESS."""
        return _v2.answer_failure(self.fields) is None

    @property
    def dedup_key(self) -> str:
        return "v2_pay:" + self.fields["transaction_id"]

    def __repr__(self) -> str:
        return f"<V2PayNotification result_code={self.fields.get('result_code')!r}>"


@dataclass(frozen=True, slots=True)
class V2RefundNotification:
    """A decrypted APIv2 refund notification.

    ``info`` is the decrypted ``req_info``. ``envelope`` holds the outer fields (``appid``,
    ``mch_id``, ...): WeChat Pay does not sign them, so they are informational only. Neither
    is shown in the ``repr``.
    """

    info: dict[str, str] = field(repr=False)
    envelope: dict[str, str] = field(repr=False)

    @property
    def refund_id(self) -> str:
        return self.info["refund_id"]

    @property
    def out_refund_no(self) -> str:
        return self.info["out_refund_no"]

    @property
    def refund_status(self) -> str:
        return self.info["refund_status"]

    @property
    def dedup_key(self) -> str:
        return f"v2_refund:{self.info['refund_id']}:{self.info['refund_status']}"

    def __repr__(self) -> str:
        return "<V2RefundNotification>"


AnyNotification: TypeAlias = Notification | V2PayNotification | V2RefundNotification
