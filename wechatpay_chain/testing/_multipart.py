"""Reading multipart/form-data uploads as the fake server receives them, streaming.

The merchant signs the ``meta`` part; every part is hashed on the way, so a 1 GiB upload
needs no more memory than a small one. Parts are kept byte for byte (no line-ending or
charset rewriting): what was signed is what is checked.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

from ..crypto.hashes import _hasher

__all__ = ["Part", "boundary_of", "meta_part", "parts", "read_parts"]

_READ = 256 * 1024
_MAX_HEAD = 16 * 1024
#: Parts up to this size keep their content; larger ones only their size and digests.
KEEP = 8 * 1024 * 1024


@dataclass(slots=True)
class Part:
    """One part: its form name, filename, headers (lower-case names) and what it held."""

    name: str
    filename: str | None
    headers: dict[str, str]
    size: int = 0
    content: bytes | None = None
    digests: dict[str, str] = field(default_factory=dict)


def _params(value: str) -> tuple[str, dict[str, str]]:
    """``form-data; name="meta"; filename="a.jpg"`` -> ("form-data", {name:…, filename:…})."""
    pieces: list[str] = []
    current, quoted = "", False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            pieces.append(current)
            current = ""
        else:
            current += char
    pieces.append(current)
    found: dict[str, str] = {}
    for piece in pieces[1:]:
        key, sep, raw = piece.strip().partition("=")
        if not sep:
            continue
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = raw[1:-1]
        found[key.strip().lower()] = raw
    return pieces[0].strip().lower(), found


def boundary_of(content_type: str) -> bytes:
    """The boundary of a ``multipart/form-data`` Content-Type; ValueError if it has none."""
    kind, found = _params(content_type)
    boundary = found.get("boundary")
    if kind != "multipart/form-data" or not boundary:
        raise ValueError("Content-Type is not multipart/form-data with a boundary")
    return boundary.encode("latin-1")


class _Reader:
    __slots__ = ("buffer", "eof", "stream")

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.buffer = b"\r\n"  # so the first boundary line looks like every other delimiter
        self.eof = False

    def more(self) -> bool:
        if self.eof:
            return False
        data = self.stream.read(_READ)
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True


def read_parts(
    content_type: str,
    stream: BinaryIO,
    *,
    algorithms: Iterable[str] = ("sha256", "sm3"),
    keep: int = KEEP,
    stop_after: str | None = None,
) -> dict[str, Part]:
    """name -> Part of a multipart/form-data body read from ``stream``; ValueError if malformed.

    ``stop_after`` ends the reading once that part is complete (the signature check needs
    only ``meta``, the first part).
    """
    delimiter = b"\r\n--" + boundary_of(content_type)
    reader = _Reader(stream)
    found: dict[str, Part] = {}
    names = tuple(algorithms)
    # The preamble, up to the first delimiter, is ignored.
    while (at := reader.buffer.find(delimiter)) < 0:
        reader.buffer = reader.buffer[-len(delimiter) :]
        if not reader.more():
            raise ValueError("multipart body has no boundary")
    reader.buffer = reader.buffer[at + len(delimiter) :]
    while True:
        while len(reader.buffer) < 2 and reader.more():
            pass
        if reader.buffer[:2] == b"--":
            return found  # the closing delimiter; an epilogue is ignored
        while (end := reader.buffer.find(b"\r\n\r\n")) < 0:
            if len(reader.buffer) > _MAX_HEAD or not reader.more():
                raise ValueError("multipart part headers are malformed")
        if reader.buffer[:2] != b"\r\n":
            raise ValueError("multipart delimiter is not followed by a line break")
        part = _head(reader.buffer[2:end].decode("utf-8", "replace"))
        reader.buffer = reader.buffer[end + 4 :]
        hashers = {name: _hasher(name) for name in names}
        kept: list[bytes] | None = []
        while True:
            at = reader.buffer.find(delimiter)
            ready = reader.buffer[:at] if at >= 0 else reader.buffer[: -len(delimiter) + 1]
            if ready:
                part.size += len(ready)
                for hasher in hashers.values():
                    hasher.update(ready)
                if kept is not None:
                    kept = kept if part.size <= keep else None
                    if kept is not None:
                        kept.append(ready)
                reader.buffer = reader.buffer[len(ready) :]
            if at >= 0:
                reader.buffer = reader.buffer[len(delimiter) :]
                break
            if not reader.more():
                raise ValueError("multipart body ends inside a part")
        part.digests = {name: hasher.hexdigest() for name, hasher in hashers.items()}
        part.content = b"".join(kept) if kept is not None else None
        if part.name in found:
            raise ValueError(f"multipart part {part.name!r} is repeated")
        found[part.name] = part
        if part.name == stop_after:
            return found


def _head(text: str) -> Part:
    headers: dict[str, str] = {}
    for line in text.split("\r\n"):
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError("multipart part header line has no ':'")
        headers[name.strip().lower()] = value.strip()
    kind, params = _params(headers.get("content-disposition", ""))
    if kind != "form-data" or "name" not in params:
        raise ValueError("multipart part has no Content-Disposition: form-data; name=...")
    filename = params.get("filename")
    if filename is not None:  # browsers (and we) escape these three in form filenames
        filename = filename.replace("%22", '"').replace("%0D", "\r").replace("%0A", "\n")
    return Part(params["name"], filename, headers)


def parts(content_type: str, body: bytes) -> dict[str, tuple[dict[str, str], bytes]]:
    """name -> (headers, content) of each part of a multipart/form-data body in memory."""
    return {
        name: (part.headers, part.content or b"")
        for name, part in read_parts(content_type, io.BytesIO(body), keep=len(body)).items()
    }


def meta_part(content_type: str, body: bytes | BinaryIO) -> bytes:
    """The ``meta`` JSON of an upload (exact bytes, as signed), or the whole body when the
    body has no ``meta`` part or cannot be parsed (the signature check then fails)."""
    stream = io.BytesIO(body) if isinstance(body, bytes) else body
    try:
        found = read_parts(content_type, stream, algorithms=(), stop_after="meta")
    except ValueError:
        found = {}
    finally:
        if not isinstance(body, bytes):
            body.seek(0)
    meta = found.get("meta")
    if meta is not None and meta.content is not None:
        return meta.content
    if isinstance(body, bytes):
        return body
    return b""
