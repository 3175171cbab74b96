"""AES-256 as WeChat Pay uses it: GCM for APIv3 resources, ECB for APIv2 refund ``req_info``.

The key is configuration, so a wrong-sized key is an ``InvalidArgumentError``; everything
being decrypted (ciphertext, nonce, associated data) comes off the wire, so any problem with
it is a ``DecryptionError``. Messages never carry keys or plaintext.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .._exceptions import DecryptionError, InvalidArgumentError

__all__ = [
    "aes_ecb_decrypt",
    "aes_ecb_encrypt",
    "aes_gcm_decrypt",
    "aes_gcm_decrypt_bytes",
    "aes_gcm_encrypt",
]

_KEY_SIZE = 32
_BLOCK = 16
# The nonce lengths cryptography's AESGCM accepts; WeChat Pay sends 12 characters.
_NONCE_MIN, _NONCE_MAX = 8, 128


def _utf8(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _key(key: str | bytes, name: str) -> bytes:
    raw = _utf8(key)
    if len(raw) != _KEY_SIZE:
        raise InvalidArgumentError(f"{name} must be {_KEY_SIZE} bytes, got {len(raw)}")
    return raw


def _b64decode(value: str | bytes, name: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise DecryptionError(f"{name}: ciphertext is not valid base64") from None


def _text(plaintext: bytes, name: str) -> str:
    try:
        return plaintext.decode("utf-8")
    except UnicodeDecodeError:
        raise DecryptionError(f"{name}: the decrypted value is not UTF-8 text") from None


def aes_gcm_encrypt(
    plaintext: str | bytes,
    key: str | bytes,
    nonce: str | bytes,
    associated_data: str | bytes | None = b"",
) -> str:
    """Base64 of AES-256-GCM ``ciphertext || 16-byte tag``, keyed with the APIv3 key."""
    aead = AESGCM(_key(key, "apiv3_key"))
    raw_nonce = _utf8(nonce)
    if not _NONCE_MIN <= len(raw_nonce) <= _NONCE_MAX:
        raise InvalidArgumentError(
            f"nonce must be {_NONCE_MIN} to {_NONCE_MAX} bytes, got {len(raw_nonce)}"
        )
    sealed = aead.encrypt(raw_nonce, _utf8(plaintext), _utf8(associated_data or b""))
    return base64.b64encode(sealed).decode("ascii")


def aes_gcm_decrypt_bytes(
    ciphertext_b64: str | bytes,
    key: str | bytes,
    nonce: str | bytes,
    associated_data: str | bytes | None = b"",
) -> bytes:
    """The bytes sealed by AES-256-GCM; ``DecryptionError`` unless the tag authenticates."""
    aead = AESGCM(_key(key, "apiv3_key"))
    sealed = _b64decode(ciphertext_b64, "AES-GCM")
    raw_nonce = _utf8(nonce)
    if not _NONCE_MIN <= len(raw_nonce) <= _NONCE_MAX:
        raise DecryptionError(f"AES-GCM: nonce must be {_NONCE_MIN} to {_NONCE_MAX} bytes")
    try:
        return aead.decrypt(raw_nonce, sealed, _utf8(associated_data or b""))
    except (InvalidTag, ValueError):
        raise DecryptionError(
            "AES-GCM authentication failed: wrong apiv3_key, nonce or associated data, "
            "or tampered ciphertext"
        ) from None


def aes_gcm_decrypt(
    ciphertext_b64: str | bytes,
    key: str | bytes,
    nonce: str | bytes,
    associated_data: str | bytes | None = b"",
) -> str:
    """The UTF-8 text sealed by AES-256-GCM (notification resources, certificates)."""
    return _text(aes_gcm_decrypt_bytes(ciphertext_b64, key, nonce, associated_data), "AES-GCM")


def _ecb(key: str | bytes) -> Cipher[modes.ECB]:
    # ECB is what WeChat Pay chose for the APIv2 refund notification's req_info; it is used
    # for that compatibility only, never to protect anything we produce.
    return Cipher(algorithms.AES(_key(key, "key")), modes.ECB())  # noqa: S305 - protocol-mandated


def aes_ecb_encrypt(plaintext: str | bytes, key: str | bytes) -> str:
    """Base64 of AES-256-ECB with PKCS#7 padding.

    For APIv2 ``req_info`` the key is the lower-case hex MD5 of the APIv2 secret.
    """
    padder = padding.PKCS7(_BLOCK * 8).padder()
    padded = padder.update(_utf8(plaintext)) + padder.finalize()
    encryptor = _ecb(key).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")


def aes_ecb_decrypt(ciphertext_b64: str | bytes, key: str | bytes) -> str:
    """The UTF-8 text inside an AES-256-ECB/PKCS#7 ciphertext (APIv2 ``req_info``)."""
    cipher = _ecb(key)
    data = _b64decode(ciphertext_b64, "AES-ECB")
    if not data or len(data) % _BLOCK:
        raise DecryptionError(f"AES-ECB: ciphertext length is not a positive multiple of {_BLOCK}")
    decryptor = cipher.decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(_BLOCK * 8).unpadder()
    try:
        plaintext = unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise DecryptionError(
            "AES-ECB decryption failed: wrong key or damaged ciphertext (bad padding)"
        ) from None
    return _text(plaintext, "AES-ECB")
