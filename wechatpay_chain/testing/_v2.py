"""APIv2 (XML) side of the fake server: signed XML in and out, merchant certificates.

A request is parsed with the hardened ``Transformer``, its merchant found by ``mch_id``
(or ``mchid``/``combine_mch_id``), its ``sign`` checked with that merchant's ``secret``; an
endpoint that needs the merchant certificate (``security=True``) also needs a client
certificate issued to the mchid by the server's test CA. The handler's dict is answered as
XML signed like WeChat Pay's (CDATA text, bare integers, the request's ``sign_type``).
"""

from __future__ import annotations

import inspect
import json
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from .._exceptions import InvalidArgumentError
from ..protocol import v2 as _v2
from ..protocol.transformer import Transformer
from . import _v2media
from ._http import HTTPReply, HTTPRequest

if TYPE_CHECKING:
    from ._core import Merchant, Server, _Fault

__all__ = ["SECURE_PATHS", "fail", "handle", "needs_certificate", "to_xml"]

#: Endpoints (paths as sent, without ``v2/``) the docs mark 需要证书, besides every ``secapi/``
#: one: calling them without the merchant certificate is refused with ``CA_ERROR``.
SECURE_PATHS: frozenset[str] = frozenset(
    {
        "mmpaymkttransfers/send_coupon",
        "mmpaymkttransfers/promotion/transfers",
        "mmpaymkttransfers/gettransferinfo",
        "mmpaymkttransfers/sendredpack",
        "mmpaymkttransfers/sendgroupredpack",
        "mmpaymkttransfers/sendminiprogramhb",
        "mmpaymkttransfers/gethbinfo",
        "mmpaymkttransfers/promotion/paywwsptrans2pocket",
        "mmpaymkttransfers/promotion/querywwsptrans2pocket",
        "mmpaysptrans/pay_bank",
        "mmpaysptrans/query_bank",
        "risk/getpublickey",
        "pay/downloadfundflow",
    }
)

_MCHID_FIELDS = ("mch_id", "mchid", "combine_mch_id")
_CA_ERROR = "请求未携带证书，或请求携带的证书出错"
_XML_TYPE = ("Content-Type", "text/xml; charset=UTF-8")
_JSON_TYPE = ("Content-Type", "application/json; charset=utf-8")
_NOT_FOUND_PAGE = (
    b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n"
    b"<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


def needs_certificate(path: str) -> bool:
    """Whether the fake refuses ``path`` (as sent, no ``v2/``) without a client certificate."""
    return path.startswith("secapi/") or path in SECURE_PATHS


def to_xml(fields: Mapping[str, Any]) -> bytes:
    """``<xml>`` as WeChat Pay writes it: text in CDATA, integers bare, None left out."""
    parts = ["<xml>"]
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            text = str(value)
        else:
            text = "<![CDATA[" + str(value).replace("]]>", "]]]]><![CDATA[>") + "]]>"
        parts.append(f"<{key}>{text}</{key}>")
    parts.append("</xml>")
    return "".join(parts).encode("utf-8")


def fail(message: str, path: str = "") -> HTTPReply:
    """A ``return_code`` FAIL answer (unsigned, as WeChat Pay's are); for an endpoint that
    answers JSON (``path`` as sent, e.g. ``appauth/getaccesstoken``) a ``retcode`` -1."""
    if _v2.is_json_answer(path):
        body = json.dumps({"retcode": -1, "retmsg": message}, ensure_ascii=False)
        return HTTPReply(200, body.encode("utf-8"), [_JSON_TYPE])
    return HTTPReply(200, to_xml({"return_code": "FAIL", "return_msg": message}), [_XML_TYPE])


def _merchant(server: Server, fields: Mapping[str, Any]) -> Merchant | None:
    for name in _MCHID_FIELDS:
        value = fields.get(name)
        if isinstance(value, str) and value:
            return server.merchants.get(value)
    return None


def _common_name(cert: Mapping[str, Any]) -> str | None:
    for rdn in cert.get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None


def _certificate_error(http: HTTPRequest, merchant: Merchant) -> str | None:
    """Why this request may not call a certificate endpoint; None when it may."""
    if not http.tls:
        return f"{_CA_ERROR}（未使用 TLS 连接）"
    if not http.client_cert:
        return f"{_CA_ERROR}（请求未携带证书）"
    # The handshake already checked the issuer (the test CA); WeChat Pay also checks that
    # the certificate is this merchant's: its common name is the mchid.
    if _common_name(http.client_cert) != merchant.mchid:
        return f"{_CA_ERROR}（证书与商户号不匹配）"
    return None


async def handle(
    server: Server, http: HTTPRequest, path: str, raw_query: str
) -> HTTPReply | None:
    """Answer one APIv2 request (``path`` as sent, with its leading slash)."""
    from ._core import FakeRequest

    sent_path = path.lstrip("/")
    request = FakeRequest(
        method=http.method,
        path=path,
        query=dict(parse_qsl(raw_query, keep_blank_values=True)),
        headers=http.headers,
        body=http.body,
        tls_client_cert=bool(http.client_cert),
        body_file=http.body_file,
    )
    server.requests.append(request)
    matched = server._match(http.method, "v2/" + sent_path)
    if matched is None:
        return HTTPReply(404, _NOT_FOUND_PAGE, [("Content-Type", "text/html")])
    route, request.params = matched
    request.template = route.template

    form = http.method != "GET" and _v2media.is_form(http.headers.get("Content-Type", ""))
    if http.method == "GET":
        fields: dict[str, Any] = dict(request.query)
    elif form:  # an upload (_v2media.py): the form's text fields are what is signed
        found = _v2media.form_fields(http)
        if found is None:
            return fail("multipart 格式错误")
        fields = found
    else:
        try:
            fields = Transformer.to_dict(http.body)
        except InvalidArgumentError:
            return fail("XML格式错误")
    if any(not isinstance(value, str) for value in fields.values()):
        return fail("XML格式错误: 字段重复或嵌套", sent_path)
    request.data = fields
    merchant = _merchant(server, fields)
    if merchant is None:
        return fail("mch_id参数错误: 商户号不存在", sent_path)
    request.mchid = merchant.mchid
    sign_type = fields.get("sign_type", "MD5")
    if sign_type not in _v2.SIGN_TYPES:
        return fail("sign_type参数错误", sent_path)
    unsigned = _v2.is_unsigned_answer(sent_path)
    if needs_certificate(sent_path):
        why = _certificate_error(http, merchant)
        if why is not None:
            failure = {
                "return_code": "SUCCESS",
                "return_msg": "OK",
                "result_code": "FAIL",
                "err_code": "CA_ERROR",
                "err_code_des": why,
                "mch_id": merchant.mchid,
            }
            return _reply(200, failure, merchant, sign_type, None, unsigned)
    sign = fields.get("sign", "")
    expected = _v2.sign_fields(fields, merchant.secret, sign_type)
    if not sign or not secrets.compare_digest(sign.encode(), expected.encode()):
        if form:
            return _reply(200, _v2media.sign_error(merchant.mchid), merchant, sign_type, None, True)
        return fail("签名错误", sent_path)

    fault = server._take_fault(route.template)
    kind = fault.kind if fault is not None else None
    if kind == "close_connection":
        return None
    if kind in _FAULT_REPLIES:
        reply = _FAULT_REPLIES[kind]
        return HTTPReply(reply.status, reply.body, list(reply.headers))
    scripted = fault.reply if fault is not None else None
    result = scripted if scripted is not None else route.handler(request)
    if inspect.isawaitable(result):
        result = await result
    return _answer(result, merchant, sign_type, fault, unsigned)


def _answer(
    result: Any, merchant: Merchant, sign_type: str, fault: _Fault | None, unsigned: bool
) -> HTTPReply:
    from ._core import Reply

    status = 200
    headers: list[tuple[str, str]] = []
    if isinstance(result, Reply):
        status = result.status
        headers = list(result.headers.items())
        if result.body is not None:
            if not any(k.lower() == "content-type" for k, _ in headers):
                headers.append(_XML_TYPE)
            return HTTPReply(status, result.body, headers, _delay(fault))
        result = result.xml if result.xml is not None else result.json
    given: dict[str, Any] = dict(result or {})
    # Codes first, as WeChat Pay writes them; SUCCESS unless the handler says otherwise.
    fields: dict[str, Any] = {"return_code": given.pop("return_code", "SUCCESS")}
    if fields["return_code"] == "SUCCESS":
        fields["return_msg"] = given.pop("return_msg", "OK")
        fields["result_code"] = given.pop("result_code", "SUCCESS")
    fields.update(given)
    if fault is not None and fault.kind == "v2_fail":
        fields = {
            "return_code": "SUCCESS",
            "return_msg": "OK",
            "mch_id": merchant.mchid,
            "result_code": "FAIL",
            "err_code": "SYSTEMERROR",
            "err_code_des": "系统繁忙，请稍后再试",
        }
    kind = fault.kind if fault is not None else None
    reply = _reply(status, fields, merchant, sign_type, kind, unsigned)
    reply.headers.extend(headers)
    reply.delay = _delay(fault)
    return reply


def _delay(fault: _Fault | None) -> float:
    return fault.delay if fault is not None and fault.kind == "slow" else 0.0


def _reply(
    status: int,
    fields: dict[str, Any],
    merchant: Merchant,
    sign_type: str,
    kind: str | None,
    unsigned: bool,
) -> HTTPReply:
    """``fields`` as signed XML (unless a FAIL, an unsigned endpoint or a fault says not)."""
    if fields.get("return_code") == "SUCCESS" and not unsigned and kind != "v2_unsigned":
        fields.setdefault("nonce_str", secrets.token_hex(16))
        fields.pop("sign", None)
        sign = _v2.sign_fields(fields, merchant.secret, sign_type)
        if kind == "v2_wrong_sign":
            sign = ("0" if sign[0] != "0" else "1") + sign[1:]
        fields["sign"] = sign
    return HTTPReply(status, to_xml(fields), [_XML_TYPE])


# Faults that replace the answer outright (v2 bodies for the shared kinds, too).
_FAULT_REPLIES: dict[str, HTTPReply] = {
    "status_500": HTTPReply(
        500,
        to_xml({"return_code": "FAIL", "return_msg": "系统繁忙,请稍后再试"}),
        [_XML_TYPE],
    ),
    "status_429": HTTPReply(
        429, to_xml({"return_code": "FAIL", "return_msg": "频率限制"}), [_XML_TYPE]
    ),
    "v2_not_xml": HTTPReply(404, _NOT_FOUND_PAGE, [("Content-Type", "text/html")]),
    "v2_bad_xml": HTTPReply(
        200, b"<xml><return_code><![CDATA[SUCCESS]]></return_code><result_code>", [_XML_TYPE]
    ),
}
