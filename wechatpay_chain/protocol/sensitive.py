"""Sensitive request fields: encrypted with a platform key, marked with its serial.

``client.encrypt(text)`` returns an :class:`Encrypted` string. When such values sit in a JSON
body, the request carries ``Wechatpay-Serial`` naming the key they were encrypted with, so
WeChat Pay can decrypt them; a caller's own header must agree, and mixing keys is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._exceptions import InvalidArgumentError

__all__ = ["Encrypted", "encryption_serials"]


class Encrypted(str):
    """A base64 ciphertext of a sensitive field, remembering the platform key's serial."""

    __slots__ = ("serial",)
    serial: str

    def __new__(cls, ciphertext: str, serial: str) -> Encrypted:
        value = super().__new__(cls, ciphertext)
        value.serial = serial
        return value

    def __repr__(self) -> str:
        return f"<Encrypted for {self.serial}>"


def _walk(value: Any, depth: int = 0) -> Iterator[Encrypted]:
    if isinstance(value, Encrypted):
        yield value
    elif depth > 32:
        return
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk(item, depth + 1)


def encryption_serials(body: Any) -> set[str]:
    """The serials of the keys the body's :class:`Encrypted` values were made with."""
    return {value.serial for value in _walk(body)}


def serial_header(body: Any, given: str | None) -> str | None:
    """The ``Wechatpay-Serial`` the request must carry, or None when it needs none."""
    serials = encryption_serials(body)
    if not serials:
        return None
    if len(serials) > 1:
        raise InvalidArgumentError(
            f"encrypted fields use different platform keys {sorted(serials)}: encrypt all "
            "fields of one request with the same key"
        )
    (serial,) = serials
    if given is not None and given != serial:
        raise InvalidArgumentError(
            f"headers Wechatpay-Serial {given!r} does not name the key the encrypted fields "
            f"were made with ({serial!r})"
        )
    return serial
