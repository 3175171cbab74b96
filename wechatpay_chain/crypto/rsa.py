"""RSA primitives WeChat Pay uses: SHA256withRSA signatures and OAEP / PKCS#1 v1.5 encryption.

Signing and verifying run on every request, so key objects are used as given, without
re-loading or re-checking; anything else the loaders accept is loaded on each call (load once
with ``load_private_key`` / ``load_public_key`` when it matters).
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .._exceptions import DecryptionError, InvalidArgumentError
from .keys import PrivateKeyLike, PublicKeyLike, load_private_key, load_public_key

__all__ = [
    "rsa_decrypt_oaep",
    "rsa_decrypt_pkcs1v15",
    "rsa_encrypt_oaep",
    "rsa_encrypt_pkcs1v15",
    "sign_sha256_rsa",
    "verify_sha256_rsa",
]

# Stateless configuration objects, built once and shared by every call.
_SHA256 = hashes.SHA256()
_PKCS1V15 = padding.PKCS1v15()
# WeChat Pay mandates OAEP over SHA-1 with MGF1-SHA1 for sensitive fields (OAEP does not rely
# on SHA-1's collision resistance, so this is sound; it is also the only choice).
_SHA1 = hashes.SHA1()  # noqa: S303 - protocol-mandated, see above
_OAEP = padding.OAEP(mgf=padding.MGF1(_SHA1), algorithm=_SHA1, label=None)
_OAEP_OVERHEAD = 2 * 20 + 2
_PKCS1V15_OVERHEAD = 11


def _private(key: PrivateKeyLike) -> rsa.RSAPrivateKey:
    return key if isinstance(key, rsa.RSAPrivateKey) else load_private_key(key)


def _public(key: PublicKeyLike) -> rsa.RSAPublicKey:
    return key if isinstance(key, rsa.RSAPublicKey) else load_public_key(key)


def _utf8(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def sign_sha256_rsa(message: bytes | str, private_key: PrivateKeyLike) -> str:
    """Base64 of the PKCS#1 v1.5 SHA256withRSA signature of ``message``."""
    key = private_key
    if not isinstance(key, rsa.RSAPrivateKey):
        key = load_private_key(key)
    return base64.b64encode(key.sign(_utf8(message), _PKCS1V15, _SHA256)).decode("ascii")


def verify_sha256_rsa(
    message: bytes | str, signature_b64: str | bytes, public_key: PublicKeyLike
) -> bool:
    """Whether ``signature_b64`` is a valid SHA256withRSA signature of ``message``.

    Any malformed signature (bad base64, wrong length, wrong type) is simply ``False``.
    """
    key = public_key
    if not isinstance(key, rsa.RSAPublicKey):
        key = load_public_key(key)
    if not isinstance(signature_b64, (str, bytes)):
        return False
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        key.verify(signature, _utf8(message), _PKCS1V15, _SHA256)
    except (InvalidSignature, ValueError):
        return False
    return True


def _encrypt(
    plaintext: str | bytes, public_key: PublicKeyLike, pad: padding.AsymmetricPadding, name: str
) -> str:
    key = _public(public_key)
    data = _utf8(plaintext)
    overhead = _OAEP_OVERHEAD if pad is _OAEP else _PKCS1V15_OVERHEAD
    limit = key.key_size // 8 - overhead
    if len(data) > limit:
        raise InvalidArgumentError(
            f"plaintext is {len(data)} bytes; {name} with a {key.key_size}-bit key "
            f"takes at most {limit}"
        )
    return base64.b64encode(key.encrypt(data, pad)).decode("ascii")


def _decrypt(
    ciphertext_b64: str | bytes,
    private_key: PrivateKeyLike,
    pad: padding.AsymmetricPadding,
    name: str,
) -> str:
    key = _private(private_key)
    try:
        ciphertext = base64.b64decode(ciphertext_b64, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise DecryptionError(f"{name}: ciphertext is not valid base64") from None
    try:
        plaintext = key.decrypt(ciphertext, pad)
    except ValueError:
        raise DecryptionError(
            f"{name} decryption failed: wrong private key or damaged ciphertext"
        ) from None
    try:
        return plaintext.decode("utf-8")
    except UnicodeDecodeError:
        raise DecryptionError(
            f"{name} decryption gave no UTF-8 text: wrong private key or damaged ciphertext"
        ) from None


def rsa_encrypt_oaep(plaintext: str | bytes, public_key: PublicKeyLike) -> str:
    """Base64 of RSAES-OAEP (SHA-1, MGF1-SHA1) encryption: WeChat Pay's sensitive fields."""
    return _encrypt(plaintext, public_key, _OAEP, "RSA-OAEP")


def rsa_decrypt_oaep(ciphertext_b64: str | bytes, private_key: PrivateKeyLike) -> str:
    """The UTF-8 text inside an RSAES-OAEP (SHA-1) ciphertext; ``DecryptionError`` if none."""
    return _decrypt(ciphertext_b64, private_key, _OAEP, "RSA-OAEP")


def rsa_encrypt_pkcs1v15(plaintext: str | bytes, public_key: PublicKeyLike) -> str:
    """Base64 of RSAES-PKCS1-v1_5 encryption, for the few APIv2 endpoints that want it."""
    return _encrypt(plaintext, public_key, _PKCS1V15, "RSA-PKCS1v15")


def rsa_decrypt_pkcs1v15(ciphertext_b64: str | bytes, private_key: PrivateKeyLike) -> str:
    """The UTF-8 text inside an RSAES-PKCS1-v1_5 ciphertext.

    OpenSSL answers a wrong key with pseudo-random bytes instead of an error (implicit
    rejection, against padding oracles), so a wrong key is caught only when those bytes are
    not UTF-8. Prefer OAEP where there is a choice.
    """
    return _decrypt(ciphertext_b64, private_key, _PKCS1V15, "RSA-PKCS1v15")
