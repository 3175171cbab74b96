"""Notifications from the fake WeChat Pay: signed and encrypted as the real one does, then POSTed.

    await server.send_notification(url, "TRANSACTION.SUCCESS", {"out_trade_no": "1217752501"})

APIv3: the resource is AES-256-GCM sealed under the merchant's APIv3 key (associated data is
its ``original_type``), the compact JSON body is signed over ``TIMESTAMP\\nNONCE\\nBODY\\n``
by the server's current signer. APIv2 payments are signed with the APIv2 secret; APIv2
refunds carry ``req_info`` AES-256-ECB encrypted under ``md5(secret)``.

A ``fault`` makes one notification go wrong the way a forger or a broken proxy would.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import httpx

from .. import crypto
from .._exceptions import InvalidArgumentError
from ..protocol import v2 as _v2
from ..protocol import v3 as _v3
from ..protocol.formatter import Formatter
from ..protocol.transformer import Transformer

if TYPE_CHECKING:
    from ._core import Server

__all__ = [
    "NOTIFICATION_FAULTS",
    "V2_NOTIFICATION_FAULTS",
    "build_notification",
    "build_v2_notification",
    "post",
    "post_sync",
]

#: What ``fault=`` can do to an APIv3 notification.
NOTIFICATION_FAULTS = frozenset(
    {
        "tamper_body",  # the body is changed after signing
        "tamper_signature",  # the signature no longer matches
        "stale_timestamp",  # signed 6 minutes ago
        "unknown_serial",  # signed by a serial the merchant does not know
        "no_signature",  # no Wechatpay-* headers at all
        "wrong_key",  # the resource is sealed with another APIv3 key
    }
)
#: What ``fault=`` can do to an APIv2 notification.
V2_NOTIFICATION_FAULTS = frozenset(
    {
        "tamper_body",  # a signed field is changed after signing (payments)
        "tamper_signature",  # the sign no longer matches (payments)
        "wrong_key",  # signed (payments) or encrypted (refunds) with another secret
    }
)

_CHINA = timezone(timedelta(hours=8))
_SUMMARIES = {
    "TRANSACTION.SUCCESS": "支付成功",
    "REFUND.SUCCESS": "退款成功",
    "REFUND.ABNORMAL": "退款异常",
    "REFUND.CLOSED": "退款关闭",
}
_USER_AGENT = "Mozilla/4.0 (wechatpay-chain fake server)"


def _check_fault(fault: str | None, known: frozenset[str]) -> None:
    if fault is not None and fault not in known:
        raise InvalidArgumentError(f"unknown notification fault {fault!r}; known: {sorted(known)}")


def build_notification(
    server: Server,
    event_type: str,
    resource: Mapping[str, Any],
    *,
    id: str | None = None,
    summary: str | None = None,
    original_type: str | None = None,
    fault: str | None = None,
    now: float | None = None,
) -> tuple[dict[str, str], bytes]:
    """The headers and body of an APIv3 notification of ``event_type`` carrying ``resource``."""
    _check_fault(fault, NOTIFICATION_FAULTS)
    now = time.time() if now is None else now
    kind = original_type or event_type.partition(".")[0].lower() or "transaction"
    key = secrets.token_hex(16) if fault == "wrong_key" else server.merchant.apiv3_key
    nonce = Formatter.nonce(12)
    plaintext = json.dumps(dict(resource), ensure_ascii=False, separators=(",", ":"))
    document = {
        "id": id or str(uuid.uuid4()),
        "create_time": datetime.fromtimestamp(now, _CHINA).isoformat(timespec="seconds"),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": _SUMMARIES.get(event_type, event_type) if summary is None else summary,
        "resource": {
            "original_type": kind,
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": crypto.aes_gcm_encrypt(plaintext, key, nonce, kind),
            "associated_data": kind,
            "nonce": nonce,
        },
    }
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENT}
    if fault != "no_signature":
        signer = server.signer
        timestamp = str(int(now) - (360 if fault == "stale_timestamp" else 0))
        signature_nonce = secrets.token_hex(16).upper()
        signature = crypto.sign_sha256_rsa(
            _v3.response_message(timestamp, signature_nonce, body), signer.private_key
        )
        if fault == "tamper_signature":
            signature = ("A" if signature[0] != "A" else "B") + signature[1:]
        headers.update(
            {
                "Wechatpay-Timestamp": timestamp,
                "Wechatpay-Nonce": signature_nonce,
                "Wechatpay-Signature": signature,
                "Wechatpay-Serial": (
                    "UNKNOWN" + secrets.token_hex(8).upper()
                    if fault == "unknown_serial"
                    else signer.serial
                ),
                "Wechatpay-Signature-Type": _v3.AUTH_SCHEME,
            }
        )
    if fault == "tamper_body":
        body = body.replace(b'"summary":"', b'"summary":"!', 1)
    return headers, body


def build_v2_notification(
    server: Server,
    fields: Mapping[str, Any],
    *,
    refund: bool = False,
    sign_type: str = "MD5",
    fault: str | None = None,
) -> tuple[dict[str, str], bytes]:
    """The headers and XML body of an APIv2 payment (or, with ``refund``, refund) notification.

    Payments: ``fields`` are merged over plausible defaults (``return_code``/``result_code``
    SUCCESS, the merchant's ``mch_id``, a fresh ``transaction_id``, ...) and signed.
    Refunds: ``fields`` become the ``req_info`` document (``refund_id``, ``refund_status``, ...
    defaulted), encrypted, inside an unsigned envelope.
    """
    _check_fault(fault, V2_NOTIFICATION_FAULTS)
    merchant = server.merchant
    secret = secrets.token_hex(16) if fault == "wrong_key" else merchant.secret
    headers = {"Content-Type": "text/xml", "User-Agent": _USER_AGENT}
    if refund:
        info = {
            "transaction_id": server.next_id("42"),
            "out_trade_no": "T" + server.next_id(),
            "refund_id": server.next_id("50"),
            "out_refund_no": "R" + server.next_id(),
            "total_fee": "100",
            "refund_fee": "100",
            "settlement_refund_fee": "100",
            "refund_status": "SUCCESS",
            "success_time": datetime.now(_CHINA).strftime("%Y-%m-%d %H:%M:%S"),
            "refund_recv_accout": "支付用户零钱",
            "refund_account": "REFUND_SOURCE_RECHARGE_FUNDS",
            "refund_request_source": "API",
            **fields,
        }
        # req_info's document element is <root>, not <xml>.
        inner = Transformer.to_xml(info).removeprefix("<xml>").removesuffix("</xml>")
        envelope = {
            "return_code": "SUCCESS",
            "appid": "wx2421b1c4370ec43b",
            "mch_id": merchant.mchid,
            "nonce_str": Formatter.nonce(32),
            "req_info": crypto.aes_ecb_encrypt(f"<root>{inner}</root>", crypto.md5(secret)),
        }
        return headers, Transformer.to_xml(envelope).encode("utf-8")
    if fault == "tamper_body" and not fields:
        raise InvalidArgumentError("tamper_body needs at least one field to change")
    data = {
        "return_code": "SUCCESS",
        "result_code": "SUCCESS",
        "appid": "wx2421b1c4370ec43b",
        "mch_id": merchant.mchid,
        "nonce_str": Formatter.nonce(32),
        "openid": "oUpF8uMEb4qRXf22hE3X68TekukE",
        "trade_type": "JSAPI",
        "bank_type": "CFT",
        "fee_type": "CNY",
        "total_fee": "1",
        "cash_fee": "1",
        "transaction_id": server.next_id("42"),
        "out_trade_no": "T" + server.next_id(),
        "time_end": datetime.now(_CHINA).strftime("%Y%m%d%H%M%S"),
        **fields,
    }
    if sign_type != "MD5":
        data["sign_type"] = sign_type
    data["sign"] = _v2.sign_fields(data, secret, sign_type)
    if fault == "tamper_signature":
        data["sign"] = ("0" if data["sign"][0] != "0" else "1") + data["sign"][1:]
    if fault == "tamper_body":
        name = next(iter(fields))
        data[name] = f"{data[name]}0"
    return headers, Transformer.to_xml(data).encode("utf-8")


async def post(
    url: str, headers: Mapping[str, str], body: bytes, *, timeout: float = 10.0
) -> httpx.Response:
    """POST a notification as WeChat Pay does: one fresh connection, no proxy from the env."""
    async with httpx.AsyncClient(timeout=timeout, trust_env=False) as http:
        return await http.post(url, headers=dict(headers), content=body)


def post_sync(
    url: str, headers: Mapping[str, str], body: bytes, *, timeout: float = 10.0
) -> httpx.Response:
    """The blocking twin of ``post``."""
    with httpx.Client(timeout=timeout, trust_env=False) as http:
        return http.post(url, headers=dict(headers), content=body)
