"""APIv2 media upload on the fake server: ``POST v2/secapi/mch/uploadmedia``.

The body is ``multipart/form-data``: the text fields ``mch_id``, ``media_hash`` (lower-case
hex MD5 of the file), ``sign_type`` (HMAC-SHA256) and ``sign`` (over those three, no
``nonce_str``), and the file part ``media``. ``_v2fake.handle`` reads the text fields with
``form_fields`` and checks merchant, certificate and sign as for any APIv2 request (a wrong
sign is answered ``result_code`` FAIL, ``err_code`` SIGNERROR, unsigned); the handler here
then checks the file against ``media_hash`` and the 2 MiB limit, keeps it in
``server.files.media`` (a ``StoredMedia`` whose ``meta`` holds the form fields but ``sign``)
and answers a signed ``media_id``.
"""

from __future__ import annotations

import io
import secrets
from typing import TYPE_CHECKING, Any, BinaryIO

from ._multipart import read_parts

if TYPE_CHECKING:
    from ._core import FakeRequest, Server
    from ._http import HTTPRequest

__all__ = ["UPLOADMEDIA", "UPLOAD_LIMIT", "form_fields", "install", "is_form", "sign_error"]

UPLOADMEDIA = "v2/secapi/mch/uploadmedia"
#: WeChat Pay's documented limit for the image (bytes).
UPLOAD_LIMIT = 2 * 1024 * 1024
_KEEP = 8 * 1024 * 1024
_REQUIRED = ("mch_id", "media_hash", "sign_type", "sign")


def is_form(content_type: str) -> bool:
    return content_type.lower().startswith("multipart/form-data")


def _stream(body: bytes, body_file: BinaryIO | None) -> BinaryIO:
    stream: BinaryIO = body_file if body_file is not None else io.BytesIO(body)
    stream.seek(0)
    return stream


def form_fields(http: HTTPRequest) -> dict[str, str] | None:
    """The text fields of a multipart APIv2 request (file parts left out); None if malformed."""
    try:
        found = read_parts(
            http.headers.get("Content-Type", ""),
            _stream(http.body, http.body_file),
            algorithms=(),
            keep=64 * 1024,
        )
    except ValueError:
        return None
    fields: dict[str, str] = {}
    for name, part in found.items():
        if part.filename is not None:
            continue
        if part.content is None:
            return None  # a "field" too large to be one
        try:
            fields[name] = part.content.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return fields


def sign_error(mchid: str) -> dict[str, str]:
    """The answer to an upload whose sign is wrong (WeChat Pay leaves it unsigned)."""
    return {
        "return_code": "SUCCESS",
        "return_msg": "OK",
        "result_code": "FAIL",
        "err_code": "SIGNERROR",
        "err_code_des": "签名错误",
        "mch_id": mchid,
    }


def _param_error(mchid: str, message: str) -> dict[str, str]:
    return {
        "mch_id": mchid,
        "result_code": "FAIL",
        "err_code": "PARAM_ERROR",
        "err_code_des": message,
    }


def install(server: Server) -> None:
    """Register ``POST v2/secapi/mch/uploadmedia`` on ``server``."""

    def uploadmedia(request: FakeRequest) -> Any:
        from ._files import StoredMedia

        fields: dict[str, str] = request.data
        mchid = fields.get("mch_id", "")
        missing = [name for name in _REQUIRED if not fields.get(name)]
        if missing:
            return _param_error(mchid, f"缺少参数: {', '.join(missing)}")
        if fields["sign_type"] != "HMAC-SHA256":
            return _param_error(mchid, "sign_type 只支持 HMAC-SHA256")
        try:
            found = read_parts(
                request.headers.get("Content-Type", ""),
                _stream(request.body, request.body_file),
                algorithms=("md5", "sha256"),
                keep=_KEEP,
            )
        except ValueError:
            return _param_error(mchid, "multipart 格式错误")
        media = found.get("media")
        if media is None or media.filename is None:
            return _param_error(mchid, "缺少文件 media")
        if media.size == 0:
            return _param_error(mchid, "文件为空")
        if media.size > UPLOAD_LIMIT:
            return _param_error(mchid, f"文件大小超过限制 ({UPLOAD_LIMIT} bytes)")
        if fields["media_hash"] != media.digests["md5"]:
            return _param_error(mchid, "media_hash 与文件不符")
        media_id = secrets.token_urlsafe(48)
        server.files.media[media_id] = StoredMedia(
            media_id=media_id,
            template=UPLOADMEDIA,
            filename=media.filename,
            content_type=media.headers.get("content-type", ""),
            size=media.size,
            sha256=media.digests["sha256"],
            meta={k: v for k, v in fields.items() if k != "sign"},
            content=media.content,
        )
        return {"mch_id": mchid, "media_id": media_id}

    server.route("POST", UPLOADMEDIA, uploadmedia)
