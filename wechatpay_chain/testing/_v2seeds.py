"""APIv2 seed endpoints of the fake server: the cash-coupon (代金券) pair.

- ``v2/mmpaymkttransfers/send_coupon`` needs the merchant certificate (``security=True``);
  it is idempotent on ``partner_trade_no``, like the real one: a repeat gets the first
  answer, a repeat with another stock or openid is refused.
- ``v2/mmpaymkttransfers/query_coupon_stock`` does not; it reports the stock, including
  how many coupons were sent from it.

A stock comes into being the first time its ``coupon_stock_id`` is used, so tests and the
demo need no setup; ``server.state["v2_coupon_stocks"]`` holds them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._core import FakeRequest, Server

__all__ = ["install"]

SEND_COUPON = "v2/mmpaymkttransfers/send_coupon"
QUERY_COUPON_STOCK = "v2/mmpaymkttransfers/query_coupon_stock"

_SEND_REQUIRED = (
    "coupon_stock_id",
    "openid_count",
    "partner_trade_no",
    "openid",
    "appid",
    "mch_id",
)
_QUERY_REQUIRED = ("coupon_stock_id", "appid", "mch_id")


def _param_error(fields: dict[str, str], message: str) -> dict[str, str]:
    return {
        "appid": fields.get("appid", ""),
        "mch_id": fields.get("mch_id", ""),
        "result_code": "FAIL",
        "err_code": "PARAM_ERROR",
        "err_code_des": message,
    }


def _missing(fields: dict[str, str], names: tuple[str, ...]) -> str | None:
    missing = [name for name in names if not fields.get(name)]
    return f"缺少参数: {', '.join(missing)}" if missing else None


def install(server: Server) -> None:
    """Register the APIv2 seed handlers on ``server``."""
    state = server.state

    def stock(stock_id: str) -> dict[str, Any]:
        stocks: dict[str, dict[str, Any]] = state.setdefault("v2_coupon_stocks", {})
        found = stocks.get(stock_id)
        if found is None:
            now = int(time.time())
            found = stocks[stock_id] = {
                "coupon_stock_id": stock_id,
                "coupon_name": f"测试代金券 {stock_id}",
                "coupon_value": 100,
                "coupon_mininumn": 1000,  # sic: WeChat Pay's spelling
                "coupon_stock_status": 4,  # activated
                "coupon_total": 10000,
                "max_quota": 1,
                "is_send_num": 0,
                "begin_time": str(now - 86400),
                "end_time": str(now + 30 * 86400),
                "create_time": str(now - 2 * 86400),
                "coupon_budget": 1000000,
            }
        return found

    def send_coupon(request: FakeRequest) -> dict[str, Any]:
        fields: dict[str, str] = request.data
        problem = _missing(fields, _SEND_REQUIRED)
        if problem is None and fields["openid_count"] != "1":
            problem = "openid_count 只能为 1"
        if problem is not None:
            return _param_error(fields, problem)
        sent: dict[str, dict[str, Any]] = state.setdefault("v2_coupons_sent", {})
        key = f"{fields['mch_id']}/{fields['partner_trade_no']}"
        first = sent.get(key)
        if first is not None:
            if (first["coupon_stock_id"], first["openid"]) != (
                fields["coupon_stock_id"],
                fields["openid"],
            ):
                return _param_error(fields, "partner_trade_no 已用于另一次发放")
            return dict(first)
        found = stock(fields["coupon_stock_id"])
        found["is_send_num"] += 1
        answer: dict[str, Any] = {
            "appid": fields["appid"],
            "mch_id": fields["mch_id"],
            "coupon_stock_id": fields["coupon_stock_id"],
            "resp_count": 1,
            "success_count": 1,
            "failed_count": 0,
            "openid": fields["openid"],
            "ret_code": "SUCCESS",
            "coupon_id": server.next_id("9"),
            "ret_msg": "",
        }
        if fields.get("device_info"):
            answer["device_info"] = fields["device_info"]
        sent[key] = answer
        return dict(answer)

    def query_coupon_stock(request: FakeRequest) -> dict[str, Any]:
        fields: dict[str, str] = request.data
        problem = _missing(fields, _QUERY_REQUIRED)
        if problem is not None:
            return _param_error(fields, problem)
        return {
            "appid": fields["appid"],
            "mch_id": fields["mch_id"],
            **stock(fields["coupon_stock_id"]),
        }

    server.route("POST", SEND_COUPON, send_coupon)
    server.route("POST", QUERY_COUPON_STOCK, query_coupon_stock)

    from . import _v2media as _v2media

    _v2media.install(server)
