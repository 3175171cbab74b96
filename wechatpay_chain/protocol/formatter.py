"""Small string builders every signature needs: nonces, timestamps, line-feed-joined messages."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from typing import TypeVar

from .._exceptions import InvalidArgumentError

__all__ = ["Formatter"]

_V = TypeVar("_V")

_BASE62 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Random bytes at or above 248 (= 4 * 62) are dropped, so every symbol keeps exactly four of
# the remaining byte values: uniform, no modulo bias.
_ACCEPTED = len(_BASE62) * (256 // len(_BASE62))
_TO_SYMBOL = bytes(_BASE62[b % len(_BASE62)] for b in range(_ACCEPTED)) + bytes(256 - _ACCEPTED)
_REJECTED = bytes(range(_ACCEPTED, 256))


class _Entropy:
    """Bytes from ``os.urandom``, fetched 4 KiB at a time: one system call per ~100 nonces.

    Each byte is handed out once. A forked child drops what it inherited, so parent and
    child never share a nonce.
    """

    _CHUNK = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._position = 0

    def take(self, count: int) -> bytes:
        with self._lock:
            start = self._position
            if start + count > len(self._buffer):
                self._buffer = os.urandom(max(self._CHUNK, count))
                start = 0
            self._position = start + count
            return self._buffer[start : start + count]

    def forget(self) -> None:
        # A thread of the parent that held the lock at the fork does not exist here.
        self._lock = threading.Lock()
        self._buffer = b""
        self._position = 0


_ENTROPY = _Entropy()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_ENTROPY.forget)


class Formatter:
    """Static helpers shared by the APIv3 signer, the APIv2 signer and the pay-sign helpers."""

    @staticmethod
    def nonce(length: int = 32) -> str:
        """A random base62 string from ``os.urandom``, uniform over ``[0-9A-Za-z]``."""
        if length < 1:
            raise InvalidArgumentError(f"nonce length must be at least 1, got {length}")
        out = b""
        while len(out) < length:
            # About 3 % of bytes are rejected; ask for a little more than needed.
            wanted = length - len(out)
            out += _ENTROPY.take(wanted + wanted // 16 + 2).translate(_TO_SYMBOL, _REJECTED)
        return out[:length].decode("ascii")

    @staticmethod
    def timestamp(now: float | None = None) -> str:
        """Unix time in whole seconds, as the string the signatures carry."""
        return str(int(time.time() if now is None else now))

    @staticmethod
    def joined_by_line_feed(*parts: str | int) -> str:
        """Every part followed by ``\\n``: the shape of every WeChat Pay signed message."""
        return "".join(f"{part}\n" for part in parts)

    @staticmethod
    def ksort(mapping: Mapping[str, _V]) -> dict[str, _V]:
        """A copy sorted bytewise by key (code-point order of ``str`` equals UTF-8 order)."""
        return dict(sorted(mapping.items(), key=lambda item: item[0]))

    @staticmethod
    def query_string(fields: Mapping[str, object]) -> str:
        """``k1=v1&k2=v2`` in bytewise key order, not percent-encoded: APIv2's sign message.

        ``sign`` and empty or ``None`` values are left out, as APIv2 signing requires.
        """
        return "&".join(
            f"{key}={value}"
            for key, value in Formatter.ksort(fields).items()
            if key != "sign" and value is not None and str(value) != ""
        )
