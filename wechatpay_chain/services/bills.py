"""Bill downloads: ask for the bill, stream it into a sink, check its digest, gunzip it.

APIv3 answers a bill request with ``download_url``, ``hash_type`` and ``hash_value``; the
file itself is fetched (signed request, unsigned answer) and its digest, computed while it
streams, must match. APIv2 answers ``downloadbill``/``downloadfundflow`` with the file
itself (or XML when there is none), without any digest.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, BinaryIO

import httpx

from .._exceptions import InvalidArgumentError, VerificationError
from ..transport.sink import Sink

if TYPE_CHECKING:
    from .session import Session

__all__ = ["Bills"]

_DATE = re.compile(r"\d{4}-?\d{2}-?\d{2}\Z")
_TAR_TYPES = ("GZIP",)

SinkTarget = str | os.PathLike[str] | BinaryIO


def _date(value: object, fmt: str) -> str:
    """``bill_date`` as the API writes it (``fmt``), from a date, YYYY-MM-DD or YYYYMMDD."""
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, str) and _DATE.match(value):
        try:
            value = datetime.strptime(value.replace("-", ""), "%Y%m%d").date()
        except ValueError:
            pass
    if not isinstance(value, date):
        raise InvalidArgumentError(
            f"bill_date must be a datetime.date or a str like '2024-01-31', got {value!r}"
        )
    return value.strftime(fmt)


def _tar_type(value: str | None) -> str | None:
    if value is not None and value not in _TAR_TYPES:
        raise InvalidArgumentError(f"tar_type must be None or 'GZIP', got {value!r}")
    return value


def _target(sink: object) -> Any:
    """``sink`` once it is known to be a path or a binary file (before anything is sent)."""
    if isinstance(sink, Sink):
        raise InvalidArgumentError(
            "give the bill helpers a path or a binary file; they build the checked Sink"
        )
    Sink(sink)  # type: ignore[arg-type]
    return sink


class Bills:
    """``client.bills``: trade and fund-flow bills, APIv3 and APIv2, streamed into ``sink``.

    Every helper returns the file download's ``httpx.Response`` (its body is in the sink;
    ``response.extensions["sink_size"]`` is the number of bytes written). With
    ``decompress=True`` (the default) a gzip bill is written decompressed.
    """

    __slots__ = ("_client",)

    def __init__(self, client: Session) -> None:
        self._client = client

    async def download(
        self,
        sink: SinkTarget,
        *,
        bill_date: str | date,
        bill_type: str = "ALL",
        tar_type: str | None = None,
        sub_mchid: str | None = None,
        decompress: bool = True,
    ) -> httpx.Response:
        """The trade bill (``GET v3/bill/tradebill``), its SHA1 checked while it streams."""
        query = {
            "bill_date": _date(bill_date, "%Y-%m-%d"),
            "sub_mchid": sub_mchid,
            "bill_type": bill_type,
            "tar_type": _tar_type(tar_type),
        }
        target = _target(sink)
        answer = await self._client.chain("v3/bill/tradebill").get(query=query)
        return await self.fetch(answer.json(), target, decompress=decompress)

    async def download_fundflow(
        self,
        sink: SinkTarget,
        *,
        bill_date: str | date,
        account_type: str = "BASIC",
        tar_type: str | None = None,
        decompress: bool = True,
    ) -> httpx.Response:
        """The fund-flow bill (``GET v3/bill/fundflowbill``), its SHA1 checked."""
        query = {
            "bill_date": _date(bill_date, "%Y-%m-%d"),
            "account_type": account_type,
            "tar_type": _tar_type(tar_type),
        }
        target = _target(sink)
        answer = await self._client.chain("v3/bill/fundflowbill").get(query=query)
        return await self.fetch(answer.json(), target, decompress=decompress)

    async def fetch(
        self, info: Mapping[str, Any], sink: SinkTarget, *, decompress: bool = True
    ) -> httpx.Response:
        """Download a bill answer's ``download_url`` into ``sink``, checking ``hash_value``.

        ``info`` is the (verified) JSON of any APIv3 bill request: ``download_url``,
        ``hash_type``, ``hash_value``. A mismatch raises VerificationError and leaves nothing.
        """
        if not isinstance(info, Mapping):
            raise InvalidArgumentError("info must be the bill answer's JSON object")
        url = info.get("download_url")
        hash_type = info.get("hash_type")
        hash_value = info.get("hash_value")
        if not isinstance(url, str) or "://" not in url:
            raise InvalidArgumentError("the bill answer has no download_url")
        if not isinstance(hash_type, str) or not isinstance(hash_value, str):
            raise VerificationError(
                "the bill answer has no hash_type/hash_value: the download cannot be checked"
            )
        scheme, _, rest = url.partition("://")
        host, _, path = rest.partition("/")
        if scheme not in ("http", "https") or not host or not path:
            raise InvalidArgumentError(f"download_url is not an http(s) URL with a path: {url!r}")
        if "{" in path or "}" in path or path.startswith("v2/") or "#" in path:
            raise InvalidArgumentError(f"download_url cannot be requested as given: {url!r}")
        target = Sink(
            _target(sink), hash_type=hash_type, hash_value=hash_value, decompress=decompress
        )
        # The path keeps its query as sent by WeChat Pay: it is signed and sent byte for byte.
        return await self._client.chain(path).get(base_url=f"{scheme}://{host}/", sink=target)

    async def download_v2(
        self,
        sink: SinkTarget,
        *,
        appid: str,
        bill_date: str | date,
        bill_type: str = "ALL",
        tar_type: str | None = None,
        sub_mch_id: str | None = None,
        decompress: bool = True,
    ) -> httpx.Response:
        """The APIv2 trade bill (``v2/pay/downloadbill``); no digest exists to check it,
        but a gzip bill is checked for corruption and truncation. "No bill" raises APIError."""
        xml = {
            "appid": appid,
            "mch_id": self._mchid(),
            "sub_mch_id": sub_mch_id,
            "bill_date": _date(bill_date, "%Y%m%d"),
            "bill_type": bill_type,
            "tar_type": _tar_type(tar_type),
        }
        target = Sink(_target(sink), decompress=decompress)
        return await self._client.chain("v2/pay/downloadbill").post(xml=xml, sink=target)

    async def download_fundflow_v2(
        self,
        sink: SinkTarget,
        *,
        appid: str,
        bill_date: str | date,
        account_type: str = "Basic",
        tar_type: str | None = None,
        decompress: bool = True,
        security: bool = True,
    ) -> httpx.Response:
        """The APIv2 fund-flow bill (``v2/pay/downloadfundflow``): HMAC-SHA256 signed and
        sent with the merchant certificate, as WeChat Pay requires."""
        xml = {
            "appid": appid,
            "mch_id": self._mchid(),
            "bill_date": _date(bill_date, "%Y%m%d"),
            "account_type": account_type,
            "tar_type": _tar_type(tar_type),
            "sign_type": "HMAC-SHA256",
        }
        target = Sink(_target(sink), decompress=decompress)
        return await self._client.chain("v2/pay/downloadfundflow").post(
            xml=xml, sink=target, security=security
        )

    def _mchid(self) -> str:
        mchid = self._client.config.mchid
        if mchid is None:
            raise InvalidArgumentError("mchid is required for APIv2 bill downloads")
        return mchid
