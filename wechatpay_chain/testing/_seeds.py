"""Default handlers of the fake server: the seed endpoints the demo and the tests call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._core import FakeRequest, Server

__all__ = ["install"]

_REQUIRED_SEND = ("stock_id", "out_request_no", "appid", "stock_creator_mchid")


def _param_error(message: str) -> Any:
    from ._core import Reply

    return Reply(400, json={"code": "PARAM_ERROR", "message": message})


def install(server: Server) -> None:
    """Register the seed handlers on ``server``."""
    state = server.state

    def send_coupon(request: FakeRequest) -> Any:
        body = request.data if isinstance(request.data, dict) else {}
        missing = [k for k in _REQUIRED_SEND if not body.get(k)]
        if missing:
            return _param_error(f"missing {', '.join(missing)}")
        sent: dict[str, str] = state.setdefault("sent_by_request_no", {})
        key = f"{body['stock_creator_mchid']}/{body['out_request_no']}"
        coupon_id = sent.get(key)
        if coupon_id is None:  # the same out_request_no gets the same coupon: idempotent
            coupon_id = sent[key] = server.next_id("98")
            coupons: dict[str, list[dict[str, Any]]] = state.setdefault("coupons", {})
            coupons.setdefault(request.params["openid"], []).append(
                {
                    "coupon_id": coupon_id,
                    "stock_id": body["stock_id"],
                    "status": "SENDED",
                    "appid": body["appid"],
                }
            )
        return {"coupon_id": coupon_id}

    def list_coupons(request: FakeRequest) -> Any:
        if not request.query.get("appid"):
            return _param_error("missing appid")
        try:
            offset = int(request.query.get("offset", "0"))
            limit = int(request.query.get("limit", "20"))
        except ValueError:
            return _param_error("offset and limit must be integers")
        coupons = state.get("coupons", {}).get(request.params["openid"], [])
        return {
            "data": coupons[offset : offset + limit],
            "total_count": len(coupons),
            "offset": offset,
            "limit": limit,
        }

    def send_multiuse(request: FakeRequest) -> Any:
        body = request.data if isinstance(request.data, dict) else {}
        if not body.get("stock_id") or not body.get("out_request_no"):
            return _param_error("missing stock_id or out_request_no")
        return {"coupon_id": server.next_id("97")}

    server.route("POST", "v3/marketing/favor/users/{openid}/coupons", send_coupon)
    server.route("GET", "v3/marketing/favor/users/{openid}/coupons", list_coupons)
    server.route("POST", "v3/multiuse/users/{openid}/coupons", send_multiuse)

    from . import _certificates
    from . import _v2seeds as _v2seeds

    _certificates.install(server)
    _v2seeds.install(server)
    from . import _v2get

    _v2get.install(server)

    from . import _files

    _files.install(server)
