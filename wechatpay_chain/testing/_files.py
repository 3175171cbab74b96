"""Uploads and downloads on the fake WeChat Pay server (``server.files``).

- Uploads (``v3/merchant/media/upload``, ``video_upload``, the marketing and complaint image
  uploads, the fapiao file): the multipart body is read streaming (large ones are spooled
  to disk by the HTTP layer), the ``meta`` digest (``sha256``, or ``digest`` with
  ``digest_algorithm`` SM3) must match the file part, and the documented size limit holds.
  What arrived is in ``files.media``.
- Bills: ``v3/bill/tradebill`` and ``v3/bill/fundflowbill`` answer a ``download_url`` and
  the SHA1 of the uncompressed bill; ``v3/billdownload/file`` streams it unsigned, gzip for
  ``tar_type=GZIP``. APIv2 ``pay/downloadbill`` and ``pay/downloadfundflow`` answer the file
  itself, or XML ``No Bill Exist``. Any date has a small generated bill unless
  ``add_bill`` gave one (bytes, or a callable producing chunks, for very large bills).
- ``GET v3/merchant-service/images/{media_id}`` streams an uploaded image back, unsigned.
- Statements: ``GET v3/statements`` (under ``…/hk/``) and ``v3/global/statements`` answer
  the file with ``Wechatpay-Statement-Sha1``, the signature covering ``{"sha1":"…"}``;
  ``add_bill(kind="statement")`` sets one, ``no_bill``/``wrong_hash`` break the next.
- ``files.misbehave(kind)`` breaks the next file answers: see ``FILE_FAULTS``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import secrets
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..protocol.v3 import STATEMENT_DIGEST
from ._http import HTTPReply
from ._multipart import read_parts

if TYPE_CHECKING:
    from ._core import FakeRequest, Server

__all__ = ["FILE_FAULTS", "UPLOADS", "FakeFiles", "StoredMedia", "install", "make_bill"]

MIB = 1024 * 1024
#: Upload endpoints: template -> (documented size limit or None, answer field).
UPLOADS: dict[str, tuple[int | None, str]] = {
    "v3/merchant/media/upload": (2 * MIB, "media_id"),
    "v3/merchant/media/video_upload": (5 * MIB, "media_id"),
    "v3/marketing/favor/media/image-upload": (2 * MIB, "media_url"),
    "v3/merchant-service/images/upload": (2 * MIB, "media_id"),
    "v3/new-tax-control-fapiao/fapiao-applications/upload-fapiao-file": (None, "fapiao_media_id"),
}

#: What ``files.misbehave`` can do to the next file answers.
FILE_FAULTS = frozenset(
    {
        "no_bill",  # the bill request: v3 400 NO_STATEMENT_EXIST, v2 XML "No Bill Exist"
        "wrong_hash",  # the bill request: hash_value is not the bill's
        "truncate",  # the download: the connection closes halfway through the body
        "corrupt_gzip",  # the download: a byte in the middle of the gzip stream is changed
    }
)

Content = bytes | Callable[[], Iterable[bytes]]

_TRADE_HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
    "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
    "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)
_TRADE_SUMMARY = (
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
)
_FUNDFLOW_HEADER = (
    "记账时间,微信支付业务单号,资金流水单号,业务名称,业务类型,收支类型,收支金额（元）,"
    "账户结余（元）,资金变更提交申请人,备注,业务凭证号"
)
_FUNDFLOW_SUMMARY = "资金流水总笔数,收入笔数,收入金额,支出笔数,支出金额"
_V3_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_V2_DATE = re.compile(r"\d{8}\Z")
_BILL_TYPES = {
    "trade": ("ALL", "SUCCESS", "REFUND", "RECHARGE_REFUND"),
    "fundflow": ("BASIC", "OPERATION", "FEES"),
    "statement": ("ALL",),
}
_KEEP = 8 * MIB


def _row(values: Iterable[object]) -> str:
    return ",".join("`" + str(value) for value in values) + "\r\n"


def make_bill(
    bill_date: str = "2024-01-31",
    *,
    records: int = 3,
    kind: str = "trade",
    mchid: str = "1900000001",
) -> bytes:
    """A bill in WeChat Pay's format (UTF-8 with BOM, CRLF, backtick values, summary).

    One trade record's product name holds a comma, as real ones can.
    """
    day = bill_date.replace("-", "")
    lines: list[str]
    if kind == "fundflow":
        lines = ["\ufeff" + _FUNDFLOW_HEADER + "\r\n"]
        for i in range(records):
            lines.append(
                _row(
                    (
                        f"{bill_date} 10:{i // 60 % 60:02d}:{i % 60:02d}",
                        f"4200000{day}{i:010d}",
                        f"1900{day}{i:012d}",
                        "交易",
                        "交易",
                        "收入",
                        "0.01",
                        f"{(i + 1) / 100:.2f}",
                        "system",
                        "",
                        f"order_{i}",
                    )
                )
            )
        lines.append(_FUNDFLOW_SUMMARY + "\r\n")
        lines.append(_row((records, records, f"{records / 100:.2f}", 0, "0.00")))
        return "".join(lines).encode("utf-8")
    lines = ["\ufeff" + _TRADE_HEADER + "\r\n"]
    for i in range(records):
        lines.append(
            _row(
                (
                    f"{bill_date} 10:{i // 60 % 60:02d}:{i % 60:02d}",
                    "wxd678efh567hg6787",
                    mchid,
                    "0",
                    "",
                    f"4200000{day}{i:010d}",
                    f"order_{i}",
                    f"oUpF8uMuAJO_M2pxb1Q9zNjW{i:05d}",
                    "JSAPI",
                    "SUCCESS",
                    "OTHERS",
                    "CNY",
                    "0.01",
                    "0.00",
                    "0",
                    "0",
                    "0.00",
                    "0.00",
                    "",
                    "",
                    "咖啡,大杯" if i == 0 else "测试商品",
                    "",
                    "0.00000",
                    "0.60%",
                    "0.01",
                    "0.00",
                    "",
                )
            )
        )
    lines.append(_TRADE_SUMMARY + "\r\n")
    total = f"{records / 100:.2f}"
    lines.append(_row((records, total, "0.00", "0.00", "0.00000", total, "0.00")))
    return "".join(lines).encode("utf-8")


@dataclass(slots=True)
class StoredMedia:
    """An upload as the fake received and checked it."""

    media_id: str
    template: str
    filename: str | None
    content_type: str
    size: int
    sha256: str
    meta: dict[str, Any]
    #: The file itself, for uploads up to 8 MiB.
    content: bytes | None = None


@dataclass(slots=True)
class _Download:
    chunks: Callable[[], Iterable[bytes]]
    length: int | None
    content_type: str


def _chunks_of(content: Content) -> Callable[[], Iterable[bytes]]:
    if isinstance(content, bytes):
        data = content
        return lambda: [data[i : i + 256 * 1024] for i in range(0, len(data), 256 * 1024)]
    return content


def _gzip_stream(chunks: Iterable[bytes]) -> Iterator[bytes]:
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    for chunk in chunks:
        out = compressor.compress(chunk)
        if out:
            yield out
    yield compressor.flush()


def _corrupt(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


@dataclass
class FakeFiles:
    """The fake server's file side: uploads received, bills to serve, download faults."""

    server: Server
    media: dict[str, StoredMedia] = field(default_factory=dict)
    bills: dict[tuple[str, str, str], Content] = field(default_factory=dict)
    #: How many file downloads were served (bill files and images).
    downloads: int = 0
    _files: dict[str, _Download] = field(default_factory=dict)
    _faults: deque[str] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- what tests set up --------------------------------------------------------------
    def add_bill(
        self,
        content: Content,
        *,
        bill_date: str,
        bill_type: str = "ALL",
        kind: str = "trade",
    ) -> None:
        """Serve ``content`` (bytes, or a callable returning chunks) as that day's bill.

        ``bill_date`` is ``YYYY-MM-DD``; ``bill_type`` is the trade bill type or, for
        ``kind="fundflow"``, the account type. APIv2 requests for the day get it too.
        """
        if kind not in _BILL_TYPES:
            raise ValueError(f"kind must be 'trade', 'fundflow' or 'statement', got {kind!r}")
        self.bills[(kind, bill_date, bill_type.upper())] = content

    def misbehave(self, kind: str, *, times: int = 1) -> None:
        """Make the next ``times`` file answers go wrong as ``kind`` (see FILE_FAULTS)."""
        if kind not in FILE_FAULTS:
            raise ValueError(f"unknown file fault {kind!r}; known: {sorted(FILE_FAULTS)}")
        with self._lock:
            self._faults.extend([kind] * times)

    def _take(self, kind: str) -> bool:
        with self._lock:
            if kind in self._faults:
                self._faults.remove(kind)
                return True
        return False

    def accept_uploads(
        self, template: str, *, limit: int | None = None, answer: str = "media_id"
    ) -> None:
        """Accept uploads at ``template`` like the media endpoints (e.g. for a benchmark)."""
        self.server.route("POST", template, self._upload(template, limit, answer))

    # --- uploads ------------------------------------------------------------------------
    def _upload(self, template: str, limit: int | None, answer: str) -> Callable[..., Any]:
        def handle(request: FakeRequest) -> Any:
            stream = (
                request.body_file if request.body_file is not None else io.BytesIO(request.body)
            )
            stream.seek(0)
            try:
                found = read_parts(request.headers.get("Content-Type", ""), stream, keep=_KEEP)
            except ValueError as exc:
                return _error(400, "PARAM_ERROR", f"multipart body is malformed: {exc}")
            meta_part, file_part = found.get("meta"), found.get("file")
            if meta_part is None or file_part is None or meta_part.content is None:
                return _error(400, "PARAM_ERROR", "the body needs a meta part and a file part")
            try:
                meta = json.loads(meta_part.content)
            except ValueError:
                meta = None
            if not isinstance(meta, dict):
                return _error(400, "PARAM_ERROR", "meta is not a JSON object")
            if "sha256" in meta:
                algorithm, expected = "sha256", meta["sha256"]
            elif "digest" in meta:
                algorithm = str(meta.get("digest_algorithm", "SM3")).lower()
                expected = meta["digest"]
            else:
                return _error(400, "PARAM_ERROR", "meta has neither sha256 nor digest")
            actual = file_part.digests.get(algorithm)
            if actual is None or not isinstance(expected, str) or expected.lower() != actual:
                return _error(400, "PARAM_ERROR", f"meta {algorithm} does not match the file")
            if "filename" in meta and meta["filename"] != file_part.filename:
                return _error(400, "PARAM_ERROR", "meta filename is not the file part's")
            if file_part.size == 0:
                return _error(400, "PARAM_ERROR", "the file is empty")
            if limit is not None and file_part.size > limit:
                return _error(400, "PARAM_ERROR", f"文件大小超过限制 ({limit} bytes)")
            media_id = secrets.token_urlsafe(48)
            self.media[media_id] = StoredMedia(
                media_id=media_id,
                template=template,
                filename=file_part.filename,
                content_type=file_part.headers.get("content-type", ""),
                size=file_part.size,
                sha256=file_part.digests["sha256"],
                meta=meta,
                content=file_part.content,
            )
            if answer == "media_url":
                return {answer: f"https://wxpaylogo.qpic.cn/wxpaylogo/{media_id}/0"}
            return {answer: media_id}

        return handle

    def _image(self, request: FakeRequest) -> Any:
        stored = self.media.get(request.params["media_id"])
        if stored is None or stored.content is None:
            return _error(404, "RESOURCE_NOT_EXISTS", "no such image")
        return self._serve(
            _Download(_chunks_of(stored.content), stored.size, stored.content_type or "image/jpeg")
        )

    # --- bills --------------------------------------------------------------------------
    def _bill(self, kind: str, bill_date: str, bill_type: str) -> Content:
        content = self.bills.get((kind, bill_date, bill_type))
        if content is None:
            content = make_bill(bill_date, kind=kind, mchid=self.server.merchant.mchid)
        return content

    def _bill_request(self, kind: str) -> Callable[..., Any]:
        type_name = "account_type" if kind == "fundflow" else "bill_type"

        def handle(request: FakeRequest) -> Any:
            bill_date = request.query.get("bill_date", "")
            bill_type = request.query.get(type_name, _BILL_TYPES[kind][0])
            tar_type = request.query.get("tar_type")
            if not _V3_DATE.match(bill_date):
                return _error(400, "PARAM_ERROR", "bill_date must be YYYY-MM-DD")
            if bill_type not in _BILL_TYPES[kind]:
                return _error(400, "PARAM_ERROR", f"{type_name} is not one of {_BILL_TYPES[kind]}")
            if tar_type not in (None, "GZIP"):
                return _error(400, "PARAM_ERROR", "tar_type must be GZIP")
            if self._take("no_bill"):
                return _error(400, "NO_STATEMENT_EXIST", "要查询的账单不存在")
            content = self._bill(kind, bill_date, bill_type)
            digest = hashlib.sha1(usedforsecurity=False)
            for chunk in _chunks_of(content)():
                digest.update(chunk)
            hash_value = digest.hexdigest()
            if self._take("wrong_hash"):
                hash_value = hashlib.sha1(b"not the bill", usedforsecurity=False).hexdigest()
            token = secrets.token_urlsafe(24)
            self._files[token] = self._download(content, gzipped=tar_type == "GZIP")
            return {
                "hash_type": "SHA1",
                "hash_value": hash_value,
                "download_url": f"{self.server.base_url}v3/billdownload/file?token={token}",
            }

        return handle

    @staticmethod
    def _download(content: Content, *, gzipped: bool) -> _Download:
        if isinstance(content, bytes):
            body = gzip.compress(content, mtime=0) if gzipped else content
            kind = "application/x-gzip" if gzipped else "text/csv; charset=utf-8"
            return _Download(_chunks_of(body), len(body), kind)
        if gzipped:
            return _Download(lambda: _gzip_stream(content()), None, "application/x-gzip")
        length = sum(len(chunk) for chunk in content())
        return _Download(content, length, "text/csv; charset=utf-8")

    def _file(self, request: FakeRequest) -> Any:
        found = self._files.get(request.query.get("token", ""))
        if found is None:
            return _error(400, "INVALID_REQUEST", "token is unknown or expired")
        return self._serve(found)

    def _serve(self, download: _Download) -> HTTPReply:
        self.downloads += 1
        chunks: Iterable[bytes] = download.chunks()
        length = download.length
        if self._take("corrupt_gzip"):
            chunks = self._corrupted(chunks)
        if self._take("truncate"):
            if length is None:  # chunked: give it a length to fall short of
                whole = b"".join(chunks)
                chunks, length = [whole], len(whole)
            chunks = self._halved(chunks, length)
        headers = [
            ("Request-ID", self.server.next_id("08")),
            ("Content-Type", download.content_type),
        ]
        return HTTPReply(200, headers=headers, stream=chunks, length=length)

    @staticmethod
    def _corrupted(chunks: Iterable[bytes]) -> Iterator[bytes]:
        for index, chunk in enumerate(chunks):
            yield _corrupt(chunk) if index == 0 and len(chunk) > 64 else chunk

    @staticmethod
    def _halved(chunks: Iterable[bytes], length: int) -> Iterator[bytes]:
        sent = 0
        for chunk in chunks:
            if sent + len(chunk) > length // 2:
                yield chunk[: max(0, length // 2 - sent)]
                return
            sent += len(chunk)
            yield chunk

    # --- statements (v3/statements, v3/global/statements) ---------------------------------
    def _statement(self, request: FakeRequest) -> Any:
        """The statement file, its SHA-1 in ``Wechatpay-Statement-Sha1``; the server signs
        ``{"sha1":"<digest>"}`` for it. Gzip (``Content-Encoding``) when asked for; the
        digest is then still the plain file's (the docs do not say which bytes it covers)."""
        from ._core import Reply

        day = request.query.get("date", "")
        if not _V2_DATE.match(day):
            return _error(400, "PARAM_ERROR", "date must be YYYYMMDD")
        if request.query.get("mchid") != request.mchid:
            return _error(400, "PARAM_ERROR", "mchid is not the merchant who signed the request")
        if self._take("no_bill"):
            return _error(400, "NO_STATEMENT_EXIST", "要查询的账单不存在")
        content = self._bill("statement", f"{day[:4]}-{day[4:6]}-{day[6:]}", "ALL")
        body = content if isinstance(content, bytes) else b"".join(content())
        digest = hashlib.sha1(body, usedforsecurity=False).hexdigest()
        if self._take("wrong_hash"):
            digest = hashlib.sha1(b"not the statement", usedforsecurity=False).hexdigest()
        headers = {"Content-Type": "text/plain;charset=utf-8", STATEMENT_DIGEST: digest}
        if "gzip" in request.headers.get("Accept-Encoding", "").lower():
            body = gzip.compress(body, mtime=0)
            headers["Content-Encoding"] = "gzip"
        self.downloads += 1
        return Reply(200, body=body, headers=headers)

    # --- APIv2 --------------------------------------------------------------------------
    def _v2_bill(self, kind: str) -> Callable[..., Any]:
        type_name = "account_type" if kind == "fundflow" else "bill_type"

        def handle(request: FakeRequest) -> Any:
            from ._core import Reply

            fields: dict[str, str] = request.data or {}
            day = fields.get("bill_date", "")
            bill_type = fields.get(type_name, _BILL_TYPES[kind][0]).upper()
            if not _V2_DATE.match(day):
                return _v2_fail("invalid bill_date", "20001")
            if bill_type not in _BILL_TYPES[kind]:
                return _v2_fail(f"invalid {type_name}", "20001")
            if kind == "fundflow" and fields.get("sign_type") != "HMAC-SHA256":
                return _v2_fail("sign_type must be HMAC-SHA256", "20003")
            if self._take("no_bill"):
                return _v2_fail("No Bill Exist", "20002")
            content = self._bill(kind, f"{day[:4]}-{day[4:6]}-{day[6:]}", bill_type)
            body = content if isinstance(content, bytes) else b"".join(content())
            gzipped = fields.get("tar_type") == "GZIP"
            if gzipped:
                body = gzip.compress(body, mtime=0)
                if self._take("corrupt_gzip"):
                    body = _corrupt(body)
            self.downloads += 1
            kind_header = "application/x-gzip" if gzipped else "text/plain; charset=utf-8"
            return Reply(200, body=body, headers={"Content-Type": kind_header})

        return handle


def _error(status: int, code: str, message: str) -> Any:
    from ._core import Reply

    return Reply(status, json={"code": code, "message": message})


def _v2_fail(message: str, error_code: str) -> dict[str, str]:
    return {"return_code": "FAIL", "return_msg": message, "error_code": error_code}


def install(server: Server) -> FakeFiles:
    """Register the upload, bill and download routes on ``server`` (``server.files``)."""
    files = FakeFiles(server)
    server.state["files"] = files
    for template, (limit, answer) in UPLOADS.items():
        files.accept_uploads(template, limit=limit, answer=answer)
    server.route("GET", "v3/merchant-service/images/{media_id}", files._image)
    server.route("GET", "v3/bill/tradebill", files._bill_request("trade"))
    server.route("GET", "v3/bill/fundflowbill", files._bill_request("fundflow"))
    server.route("GET", "v3/billdownload/file", files._file)
    server.route("GET", "v3/statements", files._statement)
    server.route("GET", "v3/global/statements", files._statement)
    server.route("POST", "v2/pay/downloadbill", files._v2_bill("trade"))
    server.route("POST", "v2/pay/downloadfundflow", files._v2_bill("fundflow"))
    return files
