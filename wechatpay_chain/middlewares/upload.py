"""Media uploads: multipart/form-data with a signed ``meta`` JSON part and a streamed file part.

WeChat Pay signs an upload over the ``meta`` JSON alone (filename and digest), so the file
itself never has to be in memory: it is hashed in a first pass, then streamed with a known
``Content-Length`` and hashed again on the way, and the upload is aborted if the file
changed in between.

    form = UploadForm("logo.png")                 # meta {"filename": ..., "sha256": ...}
    resp = await client.v3.merchant.media.upload.post(body=form)
    media_id = resp.json()["media_id"]

APIv2 (``v2/secapi/mch/uploadmedia``) takes the same form: the transformer hashes the file
(MD5 for ``media_hash``) and leaves a ``V2Upload`` as the content; the signer signs the
fields ``mch_id``, ``media_hash``, ``sign_type`` (HMAC-SHA256, no ``nonce_str``) with the
APIv2 key and seals the multipart body (those fields, ``sign``, then the file as ``media``).
"""

from __future__ import annotations

import io
import json
import mimetypes
import os
import secrets
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import anyio.to_thread

from .._exceptions import InvalidArgumentError
from ..crypto.hashes import _hasher
from ..crypto.keys import file_url_path
from ..protocol.headers import put, put_default

if TYPE_CHECKING:
    from ..protocol.request import Request

__all__ = ["UPLOAD_LIMITS", "UploadForm", "V2Upload", "content_type_for"]

MIB = 1024 * 1024
#: Documented size limits of the upload endpoints (bytes); others have none here.
UPLOAD_LIMITS: dict[str, int] = {
    "v3/merchant/media/upload": 2 * MIB,
    "v3/merchant/media/video_upload": 5 * MIB,
    "v3/marketing/favor/media/image-upload": 2 * MIB,
    "v3/merchant-service/images/upload": 2 * MIB,
    "v2/secapi/mch/uploadmedia": 2 * MIB,
}

_CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".bmp": "image/bmp",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".mp4": "video/mp4",
    ".avi": "video/x-msvideo",
    ".wmv": "video/x-ms-wmv",
    ".mpeg": "video/mpeg",
    ".mpg": "video/mpeg",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".flv": "video/x-flv",
    ".f4v": "video/x-f4v",
    ".m4v": "video/x-m4v",
    ".rmvb": "application/vnd.rn-realmedia-vbr",
    ".pdf": "application/pdf",
    ".ofd": "application/ofd",
}
_CHUNK = 256 * 1024
_DEFAULT_DIGEST: Mapping[str, str] = {"sha256": "sha256"}
_ENDPOINT_LIMIT: Any = object()  # max_size default: the endpoint's documented limit
#: What an APIv2 upload hashes: MD5 for ``media_hash``, SHA-256 for the change check.
_V2_ALGORITHMS = frozenset({"md5", "sha256"})
#: The sign type WeChat Pay requires of APIv2 uploads (``sign_type`` field).
V2_UPLOAD_SIGN_TYPE = "HMAC-SHA256"


def content_type_for(filename: str) -> str:
    """The MIME type WeChat Pay expects for ``filename``'s extension."""
    ext = os.path.splitext(filename)[1].lower()
    known = _CONTENT_TYPES.get(ext)
    if known is not None:
        return known
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    return guessed or "application/octet-stream"


def _disposition_name(filename: str) -> bytes:
    if "\r" in filename or "\n" in filename or "\0" in filename:
        raise InvalidArgumentError("filename must not contain line breaks or NUL")
    # As browsers encode form filenames: UTF-8, with the quote percent-escaped.
    return filename.replace('"', "%22").encode("utf-8")


class UploadForm:
    """A file to upload, given as ``body=`` to an upload endpoint's verb.

    ``file`` is a path, ``bytes`` or a binary file object (read from its current position;
    it must be seekable, since it is read twice). ``filename`` defaults to the path's or the
    file object's name; ``content_type`` to the one its extension implies. ``meta`` adds
    fields to the signed meta JSON (a None value removes one, e.g. ``{"filename": None}``);
    ``digest`` names the meta fields that carry the file's digest and their algorithms,
    ``{"sha256": "sha256"}`` by default, ``{"digest": "sm3"}`` for SM3 endpoints.
    ``max_size`` overrides the endpoint's documented limit (None: no limit). On the APIv2
    upload the form has no meta JSON: ``meta`` and ``digest`` are refused there.
    """

    __slots__ = (
        "_cache",
        "_data",
        "_file",
        "_path",
        "_start",
        "content_type",
        "digest",
        "filename",
        "max_size",
        "meta",
    )

    def __init__(
        self,
        file: str | os.PathLike[str] | bytes | BinaryIO,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        meta: Mapping[str, Any] | None = None,
        digest: Mapping[str, str] | None = None,
        max_size: int | None = _ENDPOINT_LIMIT,
    ) -> None:
        self._path: Path | None = None
        self._data: bytes | None = None
        self._file: BinaryIO | None = None
        self._start = 0
        if isinstance(file, str | os.PathLike):
            if isinstance(file, str) and file[:7].lower() == "file://":
                file = file_url_path(file, "upload file")  # as every key loader takes them
            self._path = Path(file)
            if not self._path.is_file():
                raise InvalidArgumentError(f"upload file {str(self._path)!r} does not exist")
            name = self._path.name
        elif isinstance(file, bytes | bytearray | memoryview):
            self._data = bytes(file)
            name = None
        elif callable(getattr(file, "read", None)):
            if isinstance(file, io.TextIOBase):
                raise InvalidArgumentError("upload file must be opened in binary mode ('rb')")
            seekable = getattr(file, "seekable", None)
            if not (callable(seekable) and seekable()):
                raise InvalidArgumentError(
                    "upload file object must be seekable (it is read twice: digest, then "
                    "upload); pass bytes for a stream"
                )
            self._file = file
            self._start = file.tell()
            raw_name = getattr(file, "name", None)
            name = os.path.basename(raw_name) if isinstance(raw_name, str) else None
        else:
            raise InvalidArgumentError(
                f"upload file must be a path, bytes or a binary file, got {type(file).__name__}"
            )
        name = filename if filename is not None else name
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError(
                "filename= is required when uploading bytes or a nameless file"
            )
        _disposition_name(name)
        digest = _DEFAULT_DIGEST if digest is None else digest
        if not isinstance(digest, Mapping) or not digest:
            raise InvalidArgumentError(
                "digest must map meta field -> algorithm, e.g. {'sha256': 'sha256'}"
            )
        for algorithm in digest.values():
            _hasher(algorithm)
        if max_size is not _ENDPOINT_LIMIT and max_size is not None:
            if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size <= 0:
                raise InvalidArgumentError("max_size must be a positive int, or None for no limit")
        if content_type is not None and (
            not isinstance(content_type, str)
            or not content_type.isascii()
            or any(c in content_type for c in "\r\n")
        ):
            raise InvalidArgumentError("content_type must be one line of ASCII, e.g. 'image/png'")
        try:
            json.dumps(dict(meta or {}))
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"meta cannot be serialised as JSON: {exc}") from None
        self.filename = name
        self.content_type = content_type or content_type_for(name)
        self.meta = dict(meta or {})
        self.digest = {field: algorithm.lower() for field, algorithm in digest.items()}
        self.max_size = max_size
        self._cache: tuple[object, dict[str, str]] | None = None

    def __repr__(self) -> str:
        return f"<UploadForm {self.filename!r} {self.content_type}>"

    # --- size and digests ---------------------------------------------------------------
    def _stat(self) -> tuple[int, object]:
        """The file's size and a token that changes when the file does."""
        if self._data is not None:
            return len(self._data), "bytes"  # immutable: hashed once
        if self._path is not None:
            try:
                stat = self._path.stat()
            except OSError as exc:
                raise InvalidArgumentError(
                    f"upload file {str(self._path)!r} cannot be read: {exc.strerror}"
                ) from None
            return stat.st_size, (stat.st_size, stat.st_mtime_ns)
        assert self._file is not None
        end = self._file.seek(0, os.SEEK_END)
        self._file.seek(self._start)
        return end - self._start, None

    def _open(self) -> BinaryIO:
        if self._path is not None:
            try:
                return open(self._path, "rb")
            except OSError as exc:
                raise InvalidArgumentError(
                    f"upload file {str(self._path)!r} cannot be read: {exc.strerror}"
                ) from None
        assert self._file is not None
        self._file.seek(self._start)
        return self._file

    def _close(self, handle: BinaryIO) -> None:
        if self._path is not None:
            handle.close()

    def _algorithms(self) -> frozenset[str]:
        """The APIv3 digests: the meta fields' plus SHA-256 for the change check."""
        return frozenset({*self.digest.values(), "sha256"})

    def _digests(self, algorithms: frozenset[str]) -> dict[str, str]:
        """Hex digest of the file per algorithm in ``algorithms``, in one pass."""
        hashers = {name: _hasher(name) for name in algorithms}
        if self._data is not None:
            for hasher in hashers.values():
                hasher.update(self._data)
        else:
            handle = self._open()
            try:
                while chunk := handle.read(_CHUNK):
                    if not isinstance(chunk, bytes):
                        raise InvalidArgumentError("upload file must be opened in binary mode")
                    for hasher in hashers.values():
                        hasher.update(chunk)
            finally:
                self._close(handle)
        return {name: hasher.hexdigest() for name, hasher in hashers.items()}

    async def _digests_for(self, token: object, algorithms: frozenset[str]) -> dict[str, str]:
        cached = self._cache
        if (
            cached is not None
            and token is not None
            and cached[0] == token
            and algorithms.issubset(cached[1])
        ):
            return cached[1]
        if self._data is not None and len(self._data) <= _CHUNK:
            digests = self._digests(algorithms)
        else:
            digests = await anyio.to_thread.run_sync(self._digests, algorithms)
        self._cache = (token, digests)
        return digests

    def meta_json(self, digests: Mapping[str, str]) -> bytes:
        """The exact ``meta`` part (and signed body): compact UTF-8 JSON."""
        fields: dict[str, Any] = {"filename": self.filename, **self.meta}
        for field, algorithm in self.digest.items():
            fields[field] = digests[algorithm.lower()]
        fields = {key: value for key, value in fields.items() if value is not None}
        try:
            return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"meta cannot be serialised: {exc}") from None

    # --- the pipeline's side ------------------------------------------------------------
    async def prepare(self, request: Request) -> None:
        """Set the request's multipart body, headers and signed body (the transformer calls
        this for ``body=UploadForm(...)``)."""
        v2 = request.api == "v2"
        if v2 and (self.meta or self.digest != _DEFAULT_DIGEST):
            raise InvalidArgumentError(
                "meta= and digest= are for APIv3 uploads; an APIv2 upload "
                f"({request.template!r}) sends mch_id, media_hash (MD5) and sign_type"
            )
        size, token = self._stat()
        limit = (
            UPLOAD_LIMITS.get("v2/" + request.path if v2 else request.path)
            if self.max_size is _ENDPOINT_LIMIT
            else self.max_size
        )
        if size == 0:
            raise InvalidArgumentError(f"upload file {self.filename!r} is empty")
        if limit is not None and size > limit:
            raise InvalidArgumentError(
                f"upload file {self.filename!r} is {size} bytes; {request.template} accepts "
                f"at most {limit} bytes (max_size= overrides)"
            )
        if v2:
            digests = await self._digests_for(token, _V2_ALGORITHMS)
            # The form fields need the APIv2 sign: the signer seals the body (see V2Upload).
            request.content = V2Upload(self, size, digests)
            return
        digests = await self._digests_for(token, self._algorithms())
        meta = self.meta_json(digests)
        boundary = secrets.token_hex(16)
        head = b"".join(
            (
                b"--", boundary.encode(), b"\r\n",
                b'Content-Disposition: form-data; name="meta"\r\n',
                b"Content-Type: application/json\r\n\r\n",
                meta,
                b"\r\n--", boundary.encode(), b"\r\n",
                b'Content-Disposition: form-data; name="file"; filename="',
                _disposition_name(self.filename), b'"\r\n',
                b"Content-Type: ", self.content_type.encode("latin-1"), b"\r\n\r\n",
            )
        )  # fmt: skip
        tail = b"\r\n--" + boundary.encode() + b"--\r\n"
        request.content = _FormStream(self, head, tail, size, digests["sha256"])
        put(request.headers, "Content-Type", f"multipart/form-data; boundary={boundary}")
        put(request.headers, "Content-Length", str(len(head) + size + len(tail)))
        put_default(request.headers, "Accept", "application/json")
        request.state["signed_body"] = meta


class V2Upload:
    """An APIv2 upload waiting for its sign: ``request.content`` from the transformer to the
    signer, which calls ``seal`` with the signed fields. Sent unsealed, it refuses to stream
    (a stack without an APIv2 signer must not send an unsigned upload)."""

    __slots__ = ("_digests", "_form", "_size")

    def __init__(self, form: UploadForm, size: int, digests: Mapping[str, str]) -> None:
        self._form = form
        self._size = size
        self._digests = digests

    @property
    def media_hash(self) -> str:
        """Lower-case hex MD5 of the file: the ``media_hash`` field."""
        return self._digests["md5"]

    def seal(self, request: Request, fields: Mapping[str, str]) -> None:
        """Make ``request.content`` the multipart body: ``fields`` (signed), then ``media``."""
        form = self._form
        boundary = secrets.token_hex(16).encode()
        pieces: list[bytes] = []
        for name, value in fields.items():
            pieces += (
                b"--", boundary, b'\r\nContent-Disposition: form-data; name="',
                name.encode("ascii"), b'"\r\n\r\n', value.encode("utf-8"), b"\r\n",
            )  # fmt: skip
        pieces += (
            b"--", boundary, b"\r\n",
            b'Content-Disposition: form-data; name="media"; filename="',
            _disposition_name(form.filename), b'"\r\n',
            b"Content-Type: ", form.content_type.encode("latin-1"), b"\r\n\r\n",
        )  # fmt: skip
        head = b"".join(pieces)
        tail = b"\r\n--" + boundary + b"--\r\n"
        request.content = _FormStream(form, head, tail, self._size, self._digests["sha256"])
        put(request.headers, "Content-Type", f"multipart/form-data; boundary={boundary.decode()}")
        put(request.headers, "Content-Length", str(len(head) + self._size + len(tail)))

    async def __aiter__(self) -> AsyncIterator[bytes]:
        raise InvalidArgumentError(
            f"APIv2 upload of {self._form.filename!r} was not signed: the stack's signer "
            "must seal it (SignRequest does)"
        )
        yield b""  # pragma: no cover - makes this an async generator


class _FormStream:
    """The multipart body: re-iterable (each pass re-reads the file), exactly sized."""

    __slots__ = ("_form", "_head", "_sha256", "_size", "_tail")

    def __init__(self, form: UploadForm, head: bytes, tail: bytes, size: int, sha256: str) -> None:
        self._form = form
        self._head = head
        self._tail = tail
        self._size = size
        self._sha256 = sha256

    async def __aiter__(self) -> AsyncIterator[bytes]:
        form = self._form
        yield self._head
        data = form._data
        if data is not None:  # immutable bytes: nothing can change under us
            for start in range(0, len(data), _CHUNK):
                yield data[start : start + _CHUNK]
            yield self._tail
            return
        handle = form._open()
        hasher = _hasher("sha256")
        sent = 0
        try:
            while sent < self._size:
                chunk = await anyio.to_thread.run_sync(handle.read, min(_CHUNK, self._size - sent))
                if not chunk:
                    break
                hasher.update(chunk)
                sent += len(chunk)
                yield chunk
        finally:
            form._close(handle)
        # Only a complete, unchanged file gets the closing boundary: otherwise the upload is
        # aborted mid-body and WeChat Pay never sees a file that does not match its meta.
        if sent != self._size or hasher.hexdigest() != self._sha256:
            raise InvalidArgumentError(
                f"upload file {form.filename!r} changed while it was being uploaded; "
                "nothing was accepted, send it again"
            )
        yield self._tail
