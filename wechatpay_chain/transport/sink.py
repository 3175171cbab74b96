"""Streaming an answer's body into a path or a binary file instead of memory (``sink=``).

All or nothing: a path sink is written to a temporary file beside it and moved into place
only once the whole body arrived and every check passed (the answer's signature, an expected
digest, the gzip stream); a file object is truncated back to where it started when it can
seek. An APIv2 answer that turns out to be an XML FAIL (an error instead of the bill) never
reaches the sink: it is kept in memory for the transformer to raise from. Any other answer
to a download (``pay/downloadbill``...), XML or not, goes into the sink as received, as the
PHP SDK writes it.
"""

from __future__ import annotations

import os
import tempfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils

from .. import crypto
from .._exceptions import InvalidArgumentError, VerificationError
from ..crypto.hashes import _hasher
from ..crypto.keys import file_url_path
from ..protocol import v2 as _v2
from ..protocol.transformer import Transformer
from .decoding import DEFAULT_MAX_ANSWER_SIZE, decoded, read_answer

if TYPE_CHECKING:
    from ..protocol.request import Request

__all__ = ["Sink", "StreamCheck", "receive_into"]

_GZIP_MAGIC = b"\x1f\x8b"
#: Output of one inflate step: a small compressed chunk may expand a thousandfold.
_INFLATE_STEP = 1 << 20
#: An APIv2 XML answer in place of a file is an error message: a few hundred bytes.
_MAX_XML = 1 << 20
_SHA256 = hashes.SHA256()
_PREHASHED = utils.Prehashed(_SHA256)
_PKCS1V15 = padding.PKCS1v15()


class StreamCheck(Protocol):
    """Sees a streamed 2xx body as it arrives; raises (VerificationError) to reject it."""

    async def begin(self, response: httpx.Response) -> None: ...

    def update(self, chunk: bytes) -> None: ...

    def end(self) -> None: ...


def _is_path(value: object) -> bool:
    return isinstance(value, str | os.PathLike)


class Sink:
    """A download target with checks, for ``sink=`` (a bare path or file means no checks).

    ``hash_type``/``hash_value`` (e.g. ``"SHA1"`` and the hex digest a bill answer gives) is
    the expected digest of the *content*: of the decompressed data when the body is gzip,
    as WeChat Pay computes it for bills. ``decompress=True`` writes a gzip body decompressed;
    a body that is not gzip is written as is. A mismatch, or a corrupt or truncated gzip
    stream, raises VerificationError and leaves nothing behind.
    """

    __slots__ = ("decompress", "hash_type", "hash_value", "target")

    def __init__(
        self,
        target: str | os.PathLike[str] | BinaryIO,
        *,
        hash_type: str | None = None,
        hash_value: str | None = None,
        decompress: bool = False,
    ) -> None:
        if isinstance(target, Sink):
            raise InvalidArgumentError("Sink target must be a path or a binary file, not a Sink")
        if isinstance(target, str) and target[:7].lower() == "file://":
            target = file_url_path(target, "sink")  # as the key loaders and UploadForm take it
        if not _is_path(target) and not callable(getattr(target, "write", None)):
            raise InvalidArgumentError(
                f"sink must be a path or a binary file, got {type(target).__name__}"
            )
        if (hash_type is None) != (hash_value is None):
            raise InvalidArgumentError("give both hash_type and hash_value, or neither")
        if hash_type is not None:
            if not isinstance(hash_type, str):
                raise InvalidArgumentError("hash_type must be a str such as 'SHA1'")
            _hasher(hash_type)  # refuses an unsupported algorithm now, not after the download
            if not isinstance(hash_value, str) or not hash_value:
                raise InvalidArgumentError("hash_value must be a non-empty hex str")
            try:
                bytes.fromhex(hash_value)
            except ValueError:
                raise InvalidArgumentError(
                    f"hash_value must be hex, got {hash_value[:80]!r}"
                ) from None
        self.target = target
        self.hash_type = hash_type
        self.hash_value = hash_value.lower() if hash_value is not None else None
        self.decompress = bool(decompress)

    @classmethod
    def of(cls, value: Any) -> Sink:
        return value if isinstance(value, Sink) else cls(value)

    def __repr__(self) -> str:
        target = self.target
        shown = (
            os.fspath(target) if isinstance(target, str | os.PathLike) else type(target).__name__
        )
        checks = f" {self.hash_type}={self.hash_value}" if self.hash_type else ""
        return f"<Sink {shown!r}{checks}{' decompress' if self.decompress else ''}>"


class _Destination:
    """Where the bytes go: a temporary file beside a path sink, or the caller's file."""

    __slots__ = ("_path", "_start", "_temp", "file", "size")

    def __init__(self, target: Any) -> None:
        self._path: Path | None = None
        self._temp: str | None = None
        self._start: int | None = None
        self.size = 0
        if _is_path(target):
            path = Path(target)
            if path.is_dir():
                raise InvalidArgumentError(f"sink {str(path)!r} is a directory")
            try:
                fd, self._temp = tempfile.mkstemp(
                    dir=path.parent, prefix=f".{path.name}.", suffix=".part"
                )
            except OSError as exc:
                raise InvalidArgumentError(
                    f"sink {str(path)!r} cannot be written: {exc.strerror}"
                ) from None
            self._path = path
            self.file: BinaryIO = os.fdopen(fd, "wb")
            return
        writable = getattr(target, "writable", None)
        if callable(writable) and not writable():
            raise InvalidArgumentError("sink file is not open for writing")
        if getattr(target, "encoding", None) is not None:
            raise InvalidArgumentError("sink file must be opened in binary mode ('wb')")
        self.file = target
        seekable = getattr(target, "seekable", None)
        if callable(seekable) and seekable():
            self._start = target.tell()

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.size += len(data)

    def commit(self) -> None:
        if self._path is not None and self._temp is not None:
            self.file.close()
            os.replace(self._temp, self._path)
            self._temp = None

    def discard(self) -> None:
        if self._temp is not None:
            self.file.close()
            Path(self._temp).unlink(missing_ok=True)
            self._temp = None
        elif self._path is None and self._start is not None and self.size:
            try:
                self.file.seek(self._start)
                self.file.truncate()
            except OSError:
                pass  # best effort: the caller's file object may refuse


class _Content:
    """Feeds a streamed body through the checks, gzip and the digest into ``write``."""

    __slots__ = ("_checks", "_decompress", "_digest", "_expected", "_head", "_inflater", "_write")

    def __init__(
        self, sink: Sink, write: Callable[[bytes], None], checks: Sequence[StreamCheck]
    ) -> None:
        self._write = write
        self._checks = checks
        self._decompress = sink.decompress
        self._digest = _hasher(sink.hash_type) if sink.hash_type else None
        self._expected = (sink.hash_type, sink.hash_value)
        self._head: bytes | None = b""  # None once we know whether the body is gzip
        self._inflater: Any = None

    def feed(self, chunk: bytes) -> None:
        for check in self._checks:
            check.update(chunk)
        if self._head is not None:
            self._head += chunk
            if len(self._head) < len(_GZIP_MAGIC):
                return
            chunk = self._start()
        self._consume(chunk)

    def _start(self) -> bytes:
        head, self._head = self._head or b"", None
        if head[:2] == _GZIP_MAGIC and (self._decompress or self._digest is not None):
            self._inflater = zlib.decompressobj(31)
        return head

    def _consume(self, chunk: bytes) -> None:
        if self._inflater is None:
            if self._digest is not None:
                self._digest.update(chunk)
            self._write(chunk)
            return
        if not self._decompress:
            self._write(chunk)
        self._inflate(chunk)

    def _inflate(self, data: bytes) -> None:
        while data:
            if self._inflater.eof:  # a member ended: what follows must be another member
                self._inflater = zlib.decompressobj(31)
            inflater = self._inflater
            try:
                out = inflater.decompress(data, _INFLATE_STEP)
                self._emit(out)
                while len(out) == _INFLATE_STEP and not inflater.unconsumed_tail:
                    out = inflater.decompress(b"", _INFLATE_STEP)  # output still pending
                    self._emit(out)
            except zlib.error as exc:
                raise VerificationError(f"gzip data is corrupt ({exc})") from None
            data = inflater.unconsumed_tail or inflater.unused_data

    def _emit(self, out: bytes) -> None:
        if out:
            if self._digest is not None:
                self._digest.update(out)
            if self._decompress:
                self._write(out)

    def finish(self) -> None:
        if self._head is not None:  # fewer than two bytes arrived
            self._consume(self._start())
        if self._inflater is not None:
            try:
                self._emit(self._inflater.flush())
            except zlib.error as exc:
                raise VerificationError(f"gzip data is corrupt ({exc})") from None
            if not self._inflater.eof:
                raise VerificationError("gzip data is truncated: the stream ended early")
        for check in self._checks:
            check.end()
        if self._digest is not None:
            actual = self._digest.hexdigest()
            hash_type, expected = self._expected
            if not crypto.equals(actual, expected or ""):
                raise VerificationError(
                    f"downloaded content's {hash_type} is {actual}, not the expected "
                    f"{expected}: the file is corrupt or incomplete"
                )


async def _xml_answer(response: httpx.Response, body: Any, download: bool) -> bytes | None:
    """The first bytes of an APIv2 body, or None after keeping an XML answer in memory.

    For a ``download`` (a bill), an XML answer that is not a failure, or one too long to be
    an error message, is returned whole (as far as read) to go into the sink as received.
    """
    head = b""
    async for chunk in body:
        head += chunk
        if head.lstrip():
            break
    if head.lstrip()[:1] != b"<":
        return head
    parts = [head]
    size = len(head)
    async for chunk in body:
        size += len(chunk)
        parts.append(chunk)
        if size > _MAX_XML:
            if download:
                return b"".join(parts)  # not an error message: the rest streams after it
            raise VerificationError("APIv2 answer is XML larger than 1 MiB, neither file nor error")
    content = b"".join(parts)
    if download and not _is_failure(content):
        return content
    # What Response.aread() would have stored: the transformer and verifier read .content.
    response._content = content
    return None


def _is_failure(content: bytes) -> bool:
    """Whether an XML download answer is WeChat Pay's FAIL (then raised, never written)."""
    try:
        fields = Transformer.to_dict(content)
    except InvalidArgumentError:
        return False  # not WeChat Pay's XML: the download as received
    return _v2.answer_failure(fields) is not None


async def receive_into(
    http: httpx.AsyncClient, built: httpx.Request, request: Request
) -> httpx.Response:
    """Send ``built``; a 2xx body goes to ``request.sink``, an error body is read for APIError.

    Checks registered in ``request.state["sink_checks"]`` (name -> StreamCheck, e.g. the
    verifier's signature check) see the raw body; the Sink's own digest and gzip handling
    see the content. Nothing is left in the sink unless all of them pass.
    """
    sink = Sink.of(request.sink)
    checks: Sequence[StreamCheck] = tuple(request.state.get("sink_checks", {}).values())
    destination = _Destination(sink.target)  # an unwritable sink fails before sending
    committed = False
    try:
        response = await http.send(built, stream=True)
        try:
            if response.status_code >= 400:
                await read_answer(response, DEFAULT_MAX_ANSWER_SIZE)
                return response
            body = decoded(response)  # bounded inflation, the codings we ask for only
            head = b""
            if request.api == "v2":
                first = await _xml_answer(response, body, _v2.is_download(request.path))
                if first is None:
                    return response
                if not _v2.is_unsigned_answer(request.path):
                    # Only downloads answer with something else than (signed) XML.
                    raise VerificationError(
                        f"{request.method} {request.template}: answer is not XML"
                    )
                head = first
            for check in checks:
                await check.begin(response)
            content = _Content(sink, destination.write, checks)
            if head:
                content.feed(head)
            async for chunk in body:
                content.feed(chunk)
            content.finish()
        finally:
            await response.aclose()
        destination.commit()
        committed = True
        response.extensions = {
            **response.extensions,
            "sink": request.sink,
            "sink_size": destination.size,
        }
        return response
    finally:
        if not committed:
            destination.discard()
