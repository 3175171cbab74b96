"""APIv2 (XML) side of the fake server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._http import HTTPReply, HTTPRequest

if TYPE_CHECKING:
    from ._fake import FakeWechatPay

__all__ = ["handle"]


async def handle(server: FakeWechatPay, http: HTTPRequest, path: str, raw_query: str) -> HTTPReply:
    body = b"<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[not found]]></return_msg></xml>"
    return HTTPReply(404, body, [("Content-Type", "text/xml")])
