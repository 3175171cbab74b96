"""What the merchant answers WeChat Pay: the exact acknowledgement or failure it expects."""

from __future__ import annotations

from dataclasses import dataclass

from .._exceptions import InvalidArgumentError
from .models import Kind

__all__ = ["ACK_V2", "ACK_V3", "STATUS", "Answer"]

ACK_V3 = b'{"code":"SUCCESS","message":"OK"}'
ACK_V2 = (
    b"<xml><return_code><![CDATA[SUCCESS]]></return_code>"
    b"<return_msg><![CDATA[OK]]></return_msg></xml>"
)
_JSON = "application/json; charset=utf-8"
_XML = "text/xml; charset=utf-8"

#: HTTP status of the failure answer for each reason. Any non-2xx makes WeChat Pay re-send
#: later, which is what a merchant wants for every one of them (a fixed key, a caught-up clock).
STATUS = {
    "bad_signature": 401,
    "unknown_serial": 401,
    "stale": 401,
    "bad_ciphertext": 400,
    "malformed": 400,
    "unsupported": 400,
    "duplicate": 409,
}


@dataclass(frozen=True, slots=True)
class Answer:
    """The HTTP answer for WeChat Pay: write ``status``, ``headers`` and ``body`` as they are."""

    status: int
    body: bytes
    content_type: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Type": self.content_type}

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @classmethod
    def ack(cls, kind: Kind = "v3") -> Answer:
        """Received and handled: WeChat Pay stops re-sending."""
        if kind == "v3":
            return _ACK_V3
        return _ACK_V2

    @classmethod
    def reject(cls, kind: Kind, reason: str, status: int | None = None) -> Answer:
        """Not accepted: WeChat Pay re-sends later. ``reason`` is a NotificationError reason.

        The message is the reason code alone: the caller may be an attacker, and the details
        (serials, which check failed) belong in the merchant's log, not in the answer.
        """
        code = status if status is not None else STATUS.get(reason, 400)
        if not 400 <= code <= 599:
            raise InvalidArgumentError(f"a failure answer needs a 4xx/5xx status, got {code}")
        message = reason if reason in STATUS else "rejected"
        if kind == "v3":
            body = b'{"code":"FAIL","message":"' + message.encode("ascii") + b'"}'
            return cls(code, body, _JSON)
        body = (
            b"<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA["
            + message.encode("ascii")
            + b"]]></return_msg></xml>"
        )
        return cls(code, body, _XML)


_ACK_V3 = Answer(200, ACK_V3, _JSON)
_ACK_V2 = Answer(200, ACK_V2, _XML)
