"""The fake server's APIv2 GET endpoints, signed over their query as WeChat Pay checks them.

- ``GET v2/appauth/getaccesstoken``: the OAuth token for ``pay_identity``/``pay_realname``,
  answered as JSON (``retcode``/``retmsg``), unsigned, like the real one; a wrong ``code``
  (``server.state["v2_auth_codes"]`` lists the valid ones, any code is valid when it is
  empty) gets ``retcode`` -1.
- ``GET v2/papay/h5entrustweb`` and ``v2/papay/partner/h5entrustweb``: the H5 contract
  signing, answered with an unsigned XML ``redirect_url``.

The query's ``sign`` is checked by ``_v2.handle`` like any APIv2 request's, over every
query field (MD5, or HMAC-SHA256 when ``sign_type`` says so).
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from ._core import FakeRequest, Server

__all__ = ["GETACCESSTOKEN", "H5ENTRUSTWEB", "PARTNER_H5ENTRUSTWEB", "install"]

GETACCESSTOKEN = "v2/appauth/getaccesstoken"
H5ENTRUSTWEB = "v2/papay/h5entrustweb"
PARTNER_H5ENTRUSTWEB = "v2/papay/partner/h5entrustweb"

_TOKEN_REQUIRED = ("mch_id", "appid", "openid", "code", "grant_type", "scope", "sign_type")
_ENTRUST_REQUIRED = (
    "appid",
    "mch_id",
    "plan_id",
    "contract_code",
    "request_serial",
    "contract_display_account",
    "notify_url",
    "version",
    "timestamp",
    "clientip",
)


def _json(payload: dict[str, Any]) -> Any:
    from ._core import Reply

    return Reply(
        200,
        body=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )


def install(server: Server) -> None:
    """Register the APIv2 GET handlers on ``server``."""

    def getaccesstoken(request: FakeRequest) -> Any:
        fields: dict[str, str] = request.data
        missing = [name for name in _TOKEN_REQUIRED if not fields.get(name)]
        if missing:
            return _json({"retcode": -1, "retmsg": f"缺少参数: {', '.join(missing)}"})
        if fields["sign_type"] != "HMAC-SHA256":
            return _json({"retcode": -1, "retmsg": "sign_type 必须为 HMAC-SHA256"})
        if fields["grant_type"] != "authorization_code":
            return _json({"retcode": -1, "retmsg": "grant_type 错误"})
        if fields["scope"] not in ("pay_identity", "pay_realname"):
            return _json({"retcode": -1, "retmsg": "scope 错误"})
        codes: set[str] = server.state.setdefault("v2_auth_codes", set())
        if codes and fields["code"] not in codes:
            return _json({"retcode": -1, "retmsg": "code 无效或已过期"})
        codes.discard(fields["code"])
        return _json(
            {
                "retcode": 0,
                "retmsg": "ok",
                "access_token": secrets.token_urlsafe(32),
                "access_token_expire_in": 300,
                "refresh_token": secrets.token_urlsafe(32),
                "refresh_token_expire_in": 2592000,
            }
        )

    def h5entrustweb(request: FakeRequest) -> Any:
        fields: dict[str, str] = request.data
        required: tuple[str, ...] = _ENTRUST_REQUIRED
        if request.template == PARTNER_H5ENTRUSTWEB:
            required += ("sub_mch_id",)
        missing = [name for name in required if not fields.get(name)]
        if missing or "nonce_str" in fields:
            why = f"缺少参数: {', '.join(missing)}" if missing else "不应包含 nonce_str"
            return {"result_code": "FAIL", "err_code": "PARAM_ERROR", "err_code_des": why}
        ticket = secrets.token_hex(16)
        return {
            "result_code": "SUCCESS",
            "result_msg": "",
            "redirect_url": "https://api.mch.weixin.qq.com/papay/h5entrustweb/redirect?ticket="
            + quote(ticket),
        }

    server.route("GET", GETACCESSTOKEN, getaccesstoken)
    server.route("GET", H5ENTRUSTWEB, h5entrustweb)
    server.route("GET", PARTNER_H5ENTRUSTWEB, h5entrustweb)
