"""Loading RSA keys and X.509 certificates from the shapes users keep them in.

Accepted everywhere: PEM text (``str`` or ``bytes``), base64 DER text, raw DER bytes, a
``file:///abs/path`` URL, an ``os.PathLike`` (``pathlib.Path``), or a ready ``cryptography``
object. WeChat Pay signs with RSA-2048, so loaders accept RSA keys of at least 2048 bits and
nothing else. Every failure is an ``InvalidArgumentError`` whose message names ``what`` and
says why; no message ever carries key material or a passphrase.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TypeAlias, TypeVar
from urllib.parse import unquote, urlsplit

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519

from .._exceptions import InvalidArgumentError

__all__ = [
    "MIN_RSA_KEY_SIZE",
    "CertificateLike",
    "PrivateKeyLike",
    "PublicKeyLike",
    "certificate_serial",
    "certificate_validity",
    "file_url_path",
    "load_certificate",
    "load_private_key",
    "load_public_key",
]

#: Smallest RSA modulus, in bits, the loaders accept (WeChat Pay's scheme is SHA256-RSA2048).
MIN_RSA_KEY_SIZE = 2048

#: What ``load_private_key`` accepts.
PrivateKeyLike: TypeAlias = rsa.RSAPrivateKey | str | bytes | os.PathLike[str]
#: What ``load_public_key`` accepts.
PublicKeyLike: TypeAlias = (
    rsa.RSAPublicKey | rsa.RSAPrivateKey | x509.Certificate | str | bytes | os.PathLike[str]
)
#: What ``load_certificate`` accepts.
CertificateLike: TypeAlias = x509.Certificate | str | bytes | os.PathLike[str]

_T = TypeVar("_T")

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)
_PUBLIC_LABELS = ("PUBLIC KEY", "RSA PUBLIC KEY")

# Names for what a user handed us instead of an RSA key, for the error message.
_KEY_KINDS: tuple[tuple[type, str], ...] = (
    (ec.EllipticCurvePrivateKey, "an EC key"),
    (ec.EllipticCurvePublicKey, "an EC key"),
    (ed25519.Ed25519PrivateKey, "an Ed25519 key"),
    (ed25519.Ed25519PublicKey, "an Ed25519 key"),
    (ed448.Ed448PrivateKey, "an Ed448 key"),
    (ed448.Ed448PublicKey, "an Ed448 key"),
    (x25519.X25519PrivateKey, "an X25519 key"),
    (x25519.X25519PublicKey, "an X25519 key"),
    (x448.X448PrivateKey, "an X448 key"),
    (x448.X448PublicKey, "an X448 key"),
    (dsa.DSAPrivateKey, "a DSA key"),
    (dsa.DSAPublicKey, "a DSA key"),
    (x509.Certificate, "a certificate"),
)


# --- reading the source --------------------------------------------------------------------


def _read_file(path: str, what: str, shown: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InvalidArgumentError(f"{what}: {shown} cannot be read: {reason}") from None


def _file_url_path(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise InvalidArgumentError(
            f"{what}: {url} is not an absolute file URL; write file:///absolute/path"
        )
    path = unquote(parts.path)
    if os.name == "nt" and re.match(r"/[A-Za-z]:", path):
        path = path[1:]  # file:///C:/dir/key.pem
    return path


def file_url_path(url: str, what: str) -> str:
    """The local path of a ``file:///absolute/path`` URL; InvalidArgumentError naming ``what``
    for any other kind (a host, a relative path)."""
    return _file_url_path(url, what)


def _read(value: object, what: str, expected: str) -> tuple[bytes, str]:
    """The raw bytes of ``value`` and the label naming it in errors."""
    if isinstance(value, os.PathLike):
        path = os.fsdecode(os.fspath(value))
        return _read_file(path, what, path), f"{what} ({path})"
    if isinstance(value, str):
        if value[:7].lower() == "file://":
            return _read_file(_file_url_path(value, what), what, value), f"{what} ({value})"
        return value.encode("utf-8"), what
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), what
    raise InvalidArgumentError(f"{what}: expected {expected}, got {type(value).__name__}")


def _pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    """Every complete PEM block as (label, block); PEM pasted with literal ``\\n`` is mended."""
    if b"\n" not in data and b"\\n" in data:
        data = data.replace(b"\\n", b"\n")
    return [(m.group(1).decode("ascii"), m.group(0)) for m in _PEM_BLOCK.finditer(data)]


def _der_candidates(data: bytes) -> Iterator[bytes]:
    """Raw DER, then base64-decoded DER: both start with an ASN.1 SEQUENCE (0x30)."""
    if data[:1] == b"\x30":
        yield data
    try:
        der = base64.b64decode(b"".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        return
    if der[:1] == b"\x30":
        yield der


def _not_found(where: str, noun: str, data: bytes) -> InvalidArgumentError:
    message = f"{where}: not a PEM or base64 DER {noun}"
    if b"-----BEGIN" in data:
        message = f"{where}: has an incomplete PEM block (no matching END line)"
    elif len(data) < 512 and data.rstrip().endswith((b".pem", b".crt", b".cer", b".der", b".key")):
        message += "; give a file as file:///absolute/path or a pathlib.Path"
    return InvalidArgumentError(message)


def _try(loader: Callable[[bytes], _T], blob: bytes) -> _T | None:
    """``loader(blob)``, or None when the blob is not in that format."""
    try:
        return loader(blob)
    except (ValueError, TypeError):
        return None


# --- checking what was loaded --------------------------------------------------------------


def _kind(obj: object) -> str:
    for cls, name in _KEY_KINDS:
        if isinstance(obj, cls):
            return name
    return f"a {type(obj).__name__}"


def _check_size(key: rsa.RSAPrivateKey | rsa.RSAPublicKey, where: str) -> None:
    if key.key_size < MIN_RSA_KEY_SIZE:
        raise InvalidArgumentError(
            f"{where}: is a {key.key_size}-bit RSA key; "
            f"WeChat Pay needs at least {MIN_RSA_KEY_SIZE} bits"
        )


def _rsa_private(key: object, where: str) -> rsa.RSAPrivateKey:
    if not isinstance(key, rsa.RSAPrivateKey):
        raise InvalidArgumentError(f"{where}: is {_kind(key)}; WeChat Pay needs RSA")
    _check_size(key, where)
    return key


def _rsa_public(key: object, where: str) -> rsa.RSAPublicKey:
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidArgumentError(f"{where}: is {_kind(key)}; WeChat Pay needs RSA")
    _check_size(key, where)
    return key


def _unsupported(where: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"{where}: uses a key algorithm that cannot be loaded here (SM2?); WeChat Pay needs RSA"
    )


# --- private keys --------------------------------------------------------------------------


def _parse_private(
    loader: Callable[[bytes, bytes | None], object],
    blob: bytes,
    password: bytes | None,
    where: str,
) -> object | None:
    """The key in ``blob``; None when it is not a private key at all."""
    try:
        return loader(blob, password)
    except TypeError:
        # cryptography's way of saying the passphrase and the key's encryption disagree.
        if password is None:
            raise InvalidArgumentError(
                f"{where}: is encrypted; give its passphrase (Client(private_key_password=), "
                "load_private_key(passphrase=))"
            ) from None
        raise InvalidArgumentError(
            f"{where}: a passphrase was given but the key is not encrypted"
        ) from None
    except UnsupportedAlgorithm:
        raise _unsupported(where) from None
    except ValueError:
        if password is not None:
            raise InvalidArgumentError(
                f"{where}: cannot be decrypted with the given passphrase (wrong passphrase "
                "or damaged key)"
            ) from None
        return None


def load_private_key(
    value: PrivateKeyLike,
    *,
    passphrase: str | bytes | None = None,
    what: str = "private_key",
) -> rsa.RSAPrivateKey:
    """The merchant's RSA private key from PEM (PKCS#1, PKCS#8, encrypted PKCS#8), DER, a
    file, or an ``RSAPrivateKey`` (returned as is once checked).

    ``what`` names the setting in error messages.
    """
    if isinstance(value, rsa.RSAPrivateKey):
        return _rsa_private(value, what)
    if not isinstance(value, (str, bytes, bytearray, memoryview, os.PathLike)):
        if isinstance(value, (rsa.RSAPublicKey, x509.Certificate)):
            kind = "a certificate" if isinstance(value, x509.Certificate) else "a public key"
            raise InvalidArgumentError(f"{what}: is {kind}; a private key is needed")
        if any(isinstance(value, cls) for cls, _ in _KEY_KINDS):
            raise InvalidArgumentError(f"{what}: is {_kind(value)}; WeChat Pay needs RSA")
    data, where = _read(value, what, "PEM text, DER bytes, a file:// URL, a path or a key")
    password = passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase

    blocks = _pem_blocks(data)
    if blocks:
        if any(label == "OPENSSH PRIVATE KEY" for label, _ in blocks):
            raise InvalidArgumentError(
                f"{where}: is an OpenSSH key; convert it to PEM (PKCS#8) with ssh-keygen -m PKCS8"
            )
        keys = [blob for label, blob in blocks if label.endswith("PRIVATE KEY")]
        if not keys:
            labels = ", ".join(sorted({label for label, _ in blocks}))
            raise InvalidArgumentError(f"{where}: holds no private key, only PEM {labels}")
        key = _parse_private(serialization.load_pem_private_key, keys[0], password, where)
        if key is None:
            raise InvalidArgumentError(f"{where}: has a damaged PEM private key")
        return _rsa_private(key, where)

    for der in _der_candidates(data):
        key = _parse_private(serialization.load_der_private_key, der, password, where)
        if key is not None:
            return _rsa_private(key, where)
    raise _not_found(where, "RSA private key", data)


# --- public keys and certificates ----------------------------------------------------------


def _certificate_public_key(cert: x509.Certificate, where: str) -> rsa.RSAPublicKey:
    try:
        key = cert.public_key()
    except (UnsupportedAlgorithm, ValueError):
        raise _unsupported(where) from None
    return _rsa_public(key, where)


def _public_from_pem(blocks: list[tuple[str, bytes]], where: str) -> rsa.RSAPublicKey:
    for label, blob in blocks:
        if label not in _PUBLIC_LABELS and label != "CERTIFICATE":
            continue
        try:
            if label == "CERTIFICATE":
                cert = x509.load_pem_x509_certificate(blob)
            else:
                key = serialization.load_pem_public_key(blob)
        except UnsupportedAlgorithm:
            raise _unsupported(where) from None
        except ValueError:
            raise InvalidArgumentError(f"{where}: has a damaged PEM {label}") from None
        if label == "CERTIFICATE":
            return _certificate_public_key(cert, where)
        return _rsa_public(key, where)
    labels = {label for label, _ in blocks}
    if any(label.endswith("PRIVATE KEY") for label in labels):
        raise InvalidArgumentError(
            f"{where}: is a private key; give the public key or the certificate"
        )
    raise InvalidArgumentError(
        f"{where}: holds no public key or certificate, only PEM {', '.join(sorted(labels))}"
    )


def load_public_key(value: PublicKeyLike, *, what: str = "public_key") -> rsa.RSAPublicKey:
    """An RSA public key from PEM/DER (SPKI or PKCS#1), a certificate (its key), a file, or
    a key object (an ``RSAPrivateKey`` gives its public half).

    Used for WeChat Pay platform certificates and platform public keys (``PUB_KEY_ID_...``).
    """
    if isinstance(value, rsa.RSAPublicKey):
        return _rsa_public(value, what)
    if isinstance(value, rsa.RSAPrivateKey):
        return _rsa_public(_rsa_private(value, what).public_key(), what)
    if isinstance(value, x509.Certificate):
        return _certificate_public_key(value, what)
    if any(isinstance(value, cls) for cls, _ in _KEY_KINDS):
        raise InvalidArgumentError(f"{what}: is {_kind(value)}; WeChat Pay needs RSA")
    data, where = _read(
        value, what, "PEM text, DER bytes, a file:// URL, a path, a key or a certificate"
    )

    blocks = _pem_blocks(data)
    if blocks:
        return _public_from_pem(blocks, where)

    for der in _der_candidates(data):
        try:
            key = _try(serialization.load_der_public_key, der)
        except UnsupportedAlgorithm:
            raise _unsupported(where) from None
        if key is not None:
            return _rsa_public(key, where)
        cert = _try(x509.load_der_x509_certificate, der)
        if cert is not None:
            return _certificate_public_key(cert, where)
    raise _not_found(where, "RSA public key or certificate", data)


def load_certificate(value: CertificateLike, *, what: str = "certificate") -> x509.Certificate:
    """An X.509 certificate from PEM, DER, base64 DER, a file, or a ``Certificate``."""
    if isinstance(value, x509.Certificate):
        return value
    data, where = _read(value, what, "PEM text, DER bytes, a file:// URL, a path or a certificate")

    blocks = _pem_blocks(data)
    if blocks:
        for label, blob in blocks:
            if label == "CERTIFICATE":
                cert = _try(x509.load_pem_x509_certificate, blob)
                if cert is None:
                    raise InvalidArgumentError(f"{where}: has a damaged PEM CERTIFICATE")
                return cert
        labels = ", ".join(sorted({label for label, _ in blocks}))
        raise InvalidArgumentError(f"{where}: holds no certificate, only PEM {labels}")

    for der in _der_candidates(data):
        cert = _try(x509.load_der_x509_certificate, der)
        if cert is not None:
            return cert
    raise _not_found(where, "X.509 certificate", data)


def certificate_serial(cert: CertificateLike) -> str:
    """The serial number as WeChat Pay writes it: upper-case hex of its big-endian bytes.

    Whole bytes (an even number of digits), no leading zero bytes: ``0x0ABC`` -> ``"0ABC"``.
    """
    number = load_certificate(cert).serial_number
    if number < 0:
        raise InvalidArgumentError("certificate: has a negative serial number")
    return number.to_bytes(max(1, (number.bit_length() + 7) // 8), "big").hex().upper()


def certificate_validity(cert: CertificateLike) -> tuple[datetime, datetime]:
    """``(not_before, not_after)`` of the certificate, as aware UTC datetimes."""
    loaded = load_certificate(cert)
    return loaded.not_valid_before_utc, loaded.not_valid_after_utc
