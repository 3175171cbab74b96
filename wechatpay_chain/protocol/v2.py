"""APIv2 protocol logic (sans-I/O): field signing and answer verification.

A request goes ``build_request_fields`` -> ``Transformer.to_xml``. An answer goes
``Transformer.to_dict`` -> ``answer_failure`` (a FAIL answer usually carries no ``sign``)
-> ``verify_answer`` (skipped as a whole only for a download's non-XML body).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from .._exceptions import InvalidArgumentError, VerificationError
from .transformer import field_text

__all__ = [
    "DOWNLOAD_PATHS",
    "JSON_ANSWER_PATHS",
    "SIGN_TYPES",
    "UNSIGNED_ANSWER_PATHS",
    "answer_failure",
    "build_request_fields",
    "is_download",
    "is_json_answer",
    "is_unsigned_answer",
    "json_answer_failure",
    "sign_fields",
    "verify_answer",
]

SIGN_TYPES = ("MD5", "HMAC-SHA256")

# The fields naming the merchant, per API family: most APIs, transfers, combined payments.
_MCHID_FIELDS = ("mch_id", "mchid", "combine_mch_id")
_FAILURE_FIELDS = ("return_code", "return_msg", "err_code", "err_code_des")
_SANDBOX = "sandboxnew/"

# APIv2 endpoints whose answers carry no `sign` (paths as sent, without `v2/`). A FAIL answer
# from any endpoint is unsigned too; that case is `answer_failure`'s, not this list's.
UNSIGNED_ANSWER_PATHS: frozenset[str] = frozenset(
    {
        # Bill downloads: a success answer is the file itself (text or gzip), not XML.
        "pay/downloadbill",
        "pay/downloadfundflow",
        # Order comments: a success answer is plain text lines.
        "billcommentsp/batchquerycomment",
        # Transfers to balance, and their query: documented answers have no sign field.
        "mmpaymkttransfers/promotion/transfers",
        "mmpaymkttransfers/gettransferinfo",
        # Transfers to bank cards, served under mmpaysptrans/; the PHP SDK (and some docs)
        # spell them under mmpaymkttransfers/, so both answer unsigned.
        "mmpaysptrans/pay_bank",
        "mmpaysptrans/query_bank",
        "mmpaymkttransfers/pay_bank",
        "mmpaymkttransfers/query_bank",
        # WeCom (企业微信) payments to staff and their query: no sign in the answer.
        "mmpaymkttransfers/promotion/paywwsptrans2pocket",
        "mmpaymkttransfers/promotion/querywwsptrans2pocket",
        # Cash red packets (normal, group, mini program) and their query: no sign.
        "mmpaymkttransfers/sendredpack",
        "mmpaymkttransfers/sendgroupredpack",
        "mmpaymkttransfers/sendminiprogramhb",
        "mmpaymkttransfers/gethbinfo",
        # The RSA key for bank-card encryption (served at fraud.mch.weixin.qq.com): no sign.
        "risk/getpublickey",
        # Merchant violation / risk notices for service providers: answers carry no sign.
        "risk/getviolation",
        "mchrisk/querymchrisk",
        "mchrisk/setmchriskcallback",
        "mchrisk/syncmchriskresult",
        # Sub-merchant management for service providers: no sign in the answer.
        "secapi/mch/submchmanage",
        # Transaction-quality reporting: the answer is only return/result codes.
        "payitil/report",
        # Contract signing by redirect (entrust in the official account or H5): the answer
        # is a page for the user's browser, not a signed XML document.
        "papay/entrustweb",
        "papay/h5entrustweb",
        "papay/partner/entrustweb",
        "papay/partner/h5entrustweb",
        # The sandbox key: the answer hands out `sandbox_signkey` and is not signed.
        "sandboxnew/pay/getsignkey",
        "xdc/apiv2getsignkey/sign/getsignkey",
        # OAuth access token for pay_identity/pay_realname: JSON (retcode/retmsg), no sign.
        "appauth/getaccesstoken",
    }
)


#: APIv2 endpoints whose success answer is a file: with ``sink=`` it is written as received.
DOWNLOAD_PATHS: frozenset[str] = frozenset(
    {"pay/downloadbill", "pay/downloadfundflow", "billcommentsp/batchquerycomment"}
)

#: APIv2 endpoints that answer JSON (``retcode``/``retmsg``), unsigned, instead of XML.
JSON_ANSWER_PATHS: frozenset[str] = frozenset({"appauth/getaccesstoken"})


def _sent_path(path: str) -> str:
    path = path.partition("?")[0].lstrip("/").removeprefix("v2/")
    return path[len(_SANDBOX) :] if path.startswith(_SANDBOX) else path


def is_download(path: str) -> bool:
    """Whether ``path`` (as ``is_unsigned_answer`` takes it) answers a file on success."""
    return _sent_path(path) in DOWNLOAD_PATHS


def is_json_answer(path: str) -> bool:
    """Whether ``path`` (as ``is_unsigned_answer`` takes it) answers unsigned JSON."""
    return _sent_path(path) in JSON_ANSWER_PATHS


def json_answer_failure(data: object) -> dict[str, str] | None:
    """None for a JSON answer with ``retcode`` 0, else ``{"retcode", "retmsg"}``.

    ``data`` is the parsed answer; anything but an object with an integer-like ``retcode``
    is a failure too (``retcode`` ""): an answer that cannot be read is never success.
    """
    if isinstance(data, dict):
        code = data.get("retcode")
        message = data.get("retmsg")
        text = message if isinstance(message, str) else ""
        if code == 0 and not isinstance(code, bool):
            return None
        if isinstance(code, int) and not isinstance(code, bool):
            return {"retcode": str(code), "retmsg": text}
        if isinstance(code, str) and code.strip().lstrip("-").isdigit() and len(code) < 20:
            if int(code) == 0:
                return None
            return {"retcode": code.strip(), "retmsg": text}
    return {"retcode": "", "retmsg": "answer has no numeric retcode"}


def is_unsigned_answer(path: str) -> bool:
    """Whether WeChat Pay answers ``path`` without a ``sign``.

    ``path`` is as sent (``pay/downloadbill``); a leading ``/``, a ``v2/`` prefix, a query
    string and a sandbox ``sandboxnew/`` prefix are all tolerated.
    """
    path = path.partition("?")[0].lstrip("/")
    path = path.removeprefix("v2/")
    if path in UNSIGNED_ANSWER_PATHS:
        return True
    return path.startswith(_SANDBOX) and path[len(_SANDBOX) :] in UNSIGNED_ANSWER_PATHS


def sign_fields(fields: Mapping[str, object], secret: str, sign_type: str = "MD5") -> str:
    """The APIv2 ``sign`` of ``fields``: upper-case hex MD5 or HMAC-SHA256.

    Pairs are sorted bytewise by key; ``sign`` itself and empty or None values are skipped;
    ``&key=<secret>`` closes the message.
    """
    pairs = sorted(
        (k, str(v)) for k, v in fields.items() if k != "sign" and v is not None and str(v) != ""
    )
    message = "&".join(f"{k}={v}" for k, v in pairs) + "&key=" + secret
    data = message.encode("utf-8")
    if sign_type == "HMAC-SHA256":
        return hmac.new(secret.encode("utf-8"), data, hashlib.sha256).hexdigest().upper()
    if sign_type == "MD5":
        return hashlib.md5(data).hexdigest().upper()
    raise InvalidArgumentError(f"sign_type {sign_type!r} is not supported; use one of {SIGN_TYPES}")


def build_request_fields(
    data: Mapping[str, Any],
    *,
    mchid: str | None,
    secret: str,
    nonceless: bool,
    nonce: str,
) -> dict[str, str]:
    """The signed fields of an APIv2 request body, ready for ``Transformer.to_xml``.

    Values are converted as ``field_text`` does (None dropped; bool, float, dict refused).
    ``mch_id``/``mchid``/``combine_mch_id`` must equal the client's ``mchid`` when it has
    one. ``nonce`` is added as ``nonce_str`` unless ``nonceless`` or one is given.
    ``sign_type`` may be absent (MD5), ``MD5`` or ``HMAC-SHA256``. ``sign`` is always
    computed here, over the final fields; a ``sign`` in ``data`` is replaced.
    Anything wrong raises ``InvalidArgumentError``: nothing may be sent.
    """
    if not secret:
        raise InvalidArgumentError("secret (the APIv2 key) is required for v2/... requests")
    if not isinstance(data, Mapping):
        raise InvalidArgumentError(f"xml must be a mapping, got {type(data).__name__}")
    fields: dict[str, str] = {}
    for key, value in data.items():
        text = field_text(key, value)
        if text is not None:
            fields[key] = text
    if mchid:
        for name in _MCHID_FIELDS:
            given = fields.get(name)
            if given is not None and given != mchid:
                raise InvalidArgumentError(
                    f"xml {name} {given!r} does not match the client's mchid {mchid!r}"
                )
    if not nonceless and not fields.get("nonce_str"):
        fields["nonce_str"] = nonce
    sign_type = fields.get("sign_type", "MD5")
    if sign_type not in SIGN_TYPES:
        raise InvalidArgumentError(
            f"xml sign_type {sign_type!r} is not supported; use 'MD5' (the default) "
            "or 'HMAC-SHA256'"
        )
    fields.pop("sign", None)
    fields["sign"] = sign_fields(fields, secret, sign_type)
    return fields


def answer_failure(fields: Mapping[str, Any]) -> dict[str, str] | None:
    """None for a successful answer, else what WeChat Pay said went wrong.

    Success is ``return_code`` SUCCESS with ``result_code`` absent or SUCCESS. The failure
    holds the present ones of ``return_code``, ``return_msg``, ``err_code``,
    ``err_code_des``, and always ``return_code`` ("" when the answer has none), so it is
    never empty. Call this before ``verify_answer``: a ``return_code`` FAIL answer usually
    has no ``sign``, while a ``result_code`` FAIL answer usually does, and a caller that
    reports it must verify it first.
    """
    return_code = fields.get("return_code")
    result_code = fields.get("result_code", "SUCCESS")
    if return_code == "SUCCESS" and result_code == "SUCCESS":
        return None
    # Text only: a repeated or nested field (a hostile answer) is left out, never printed.
    failure = {name: fields[name] for name in _FAILURE_FIELDS if isinstance(fields.get(name), str)}
    failure.setdefault("return_code", "")
    return failure


def verify_answer(
    fields: Mapping[str, Any],
    secret: str,
    *,
    sign_type: str | None,
    unsigned: bool,
) -> None:
    """Raise ``VerificationError`` unless the answer's ``sign`` is right.

    ``sign_type`` is the request's; without it the type is inferred from the sign's length
    (32 hex digits: MD5, 64: HMAC-SHA256). A missing sign is an error unless ``unsigned``
    (see ``is_unsigned_answer``); a sign that *is* present is checked even then, since a
    wrong one means the answer was tampered with. Repeated or nested fields are refused:
    APIv2 answers are flat, and a duplicate could smuggle a second value past the sign.
    Check ``answer_failure`` first: a ``return_code`` FAIL answer usually has no sign.
    """
    if not secret:
        raise InvalidArgumentError("secret (the APIv2 key) is required to verify v2/... answers")
    sign = fields.get("sign")
    if sign is None or sign == "":
        if unsigned:
            return
        raise VerificationError("APIv2 answer has no sign; it must not be trusted")
    for key, value in fields.items():
        if not isinstance(value, str):
            raise VerificationError(
                f"APIv2 answer field {key!r} is repeated or nested; it must not be trusted"
            )
    if sign_type is None:
        sign_type = {32: "MD5", 64: "HMAC-SHA256"}.get(len(sign))
        if sign_type is None:
            raise VerificationError(
                f"APIv2 answer sign has {len(sign)} characters, neither MD5 (32) "
                "nor HMAC-SHA256 (64); it must not be trusted"
            )
    elif sign_type not in SIGN_TYPES:
        raise InvalidArgumentError(
            f"sign_type {sign_type!r} is not supported; use 'MD5' or 'HMAC-SHA256'"
        )
    expected = sign_fields(fields, secret, sign_type).encode("ascii")
    # Exactly, as the PHP SDK's hash_equals does: WeChat Pay writes upper-case hex.
    if not hmac.compare_digest(expected, sign.encode("utf-8")):
        raise VerificationError(
            f"APIv2 answer sign does not match ({sign_type}); it must not be trusted"
        )
