"""Digests WeChat Pay asks for (bill and media hashes, APIv2 keys), all as lower-case hex."""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Protocol

from cryptography.hazmat.primitives import hashes

from .._exceptions import InvalidArgumentError

__all__ = [
    "HASH_ALGORITHMS",
    "equals",
    "file_digest",
    "hmac_sha256",
    "md5",
    "sha1",
    "sha256",
    "sm3",
]

#: Algorithm names ``file_digest`` accepts.
HASH_ALGORITHMS = ("md5", "sha1", "sha256", "sm3")
_CHUNK = 64 * 1024


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class _SM3:
    """A hashlib-shaped SM3: hashlib only has it when the system OpenSSL does."""

    def __init__(self) -> None:
        self._hash = hashes.Hash(hashes.SM3())

    def update(self, data: bytes, /) -> None:
        self._hash.update(data)

    def hexdigest(self) -> str:
        return self._hash.finalize().hex()


def _utf8(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _hasher(algorithm: str) -> _Hasher:
    name = algorithm.lower()
    if name == "sm3":
        return _SM3()
    if name in ("md5", "sha1"):
        # Protocol digests, not password hashing: allowed on FIPS-restricted builds too.
        return hashlib.new(name, usedforsecurity=False)
    if name == "sha256":
        return hashlib.sha256()
    raise InvalidArgumentError(
        f"hash algorithm {algorithm!r} is not supported; use one of {HASH_ALGORITHMS}"
    )


def md5(data: str | bytes) -> str:
    """Lower-case hex MD5 (APIv2 signs and the ``req_info`` key)."""
    return hashlib.md5(_utf8(data), usedforsecurity=False).hexdigest()


def sha1(data: str | bytes) -> str:
    """Lower-case hex SHA-1 (bill digests)."""
    return hashlib.sha1(_utf8(data), usedforsecurity=False).hexdigest()


def sha256(data: str | bytes) -> str:
    """Lower-case hex SHA-256 (media upload ``meta.sha256``)."""
    return hashlib.sha256(_utf8(data)).hexdigest()


def sm3(data: str | bytes) -> str:
    """Lower-case hex SM3 (the Chinese national-standard hash, in SM-series APIs)."""
    hasher = _SM3()
    hasher.update(_utf8(data))
    return hasher.hexdigest()


def hmac_sha256(key: str | bytes, data: str | bytes) -> str:
    """Lower-case hex HMAC-SHA256 of ``data`` under ``key``."""
    return hmac.new(_utf8(key), _utf8(data), hashlib.sha256).hexdigest()


def equals(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time equality, for comparing signatures and digests."""
    return hmac.compare_digest(_utf8(a), _utf8(b))


def file_digest(source: str | os.PathLike[str] | _Readable, algorithm: str) -> str:
    """Lower-case hex digest of a file (path or binary file object), read in chunks.

    A file object is read from its current position to its end and is not closed.
    """
    hasher = _hasher(algorithm)
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as fh:
            _feed(hasher, fh)
    else:
        _feed(hasher, source)
    return hasher.hexdigest()


def _feed(hasher: _Hasher, stream: _Readable) -> None:
    while chunk := stream.read(_CHUNK):
        hasher.update(chunk)
