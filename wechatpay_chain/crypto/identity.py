"""The merchant API certificate for APIv2 ``security=True`` requests (mutual TLS).

``load_merchant_identity`` runs when a client is made: it reads ``merchant_cert`` and
``merchant_key`` (PEM, DER, a PKCS#12 ``apiclient_cert.p12``), checks that the key belongs
to the certificate, and fails there with a clear error. ``merchant_ssl_context`` builds the
TLS context from it later, on the first ``security=True`` request.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import unquote, urlsplit

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from .._exceptions import InvalidArgumentError
from .keys import certificate_serial, load_private_key

__all__ = ["NO_CERT", "MerchantIdentity", "load_merchant_identity"]

NO_CERT = (
    "security=True requests need the merchant API certificate: give merchant_cert (the "
    "apiclient_cert.pem or apiclient_cert.p12 of the merchant) and, for PEM, merchant_key"
)


class MerchantIdentity:
    """The merchant API certificate (with any chain) and its RSA key; never printed."""

    __slots__ = ("_key", "certificate", "chain")

    def __init__(
        self,
        certificate: x509.Certificate,
        key: rsa.RSAPrivateKey,
        chain: tuple[x509.Certificate, ...] = (),
    ) -> None:
        self.certificate = certificate
        self.chain = chain
        self._key = key

    @property
    def serial(self) -> str:
        """The certificate serial as WeChat Pay writes it (upper-case hex)."""
        return certificate_serial(self.certificate)

    def __repr__(self) -> str:
        return f"<MerchantIdentity serial={self.serial!r}>"

    # Equal when the certificate is: clients of one merchant share its mutual-TLS pools.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, MerchantIdentity) and other.certificate == self.certificate

    def __hash__(self) -> int:
        return hash(self.certificate)

    def pem_files(self, folder: str) -> tuple[str, str]:
        """Write ``(certfile, password)`` for ``SSLContext.load_cert_chain`` into ``folder``.

        The key is written encrypted under a one-time password, so it never rests on disk
        in clear, not even for the moment ssl takes to read it.
        """
        password = secrets.token_urlsafe(32)
        key = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password.encode("ascii")),
        )
        certs = b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in (self.certificate, *self.chain)
        )
        path = os.path.join(folder, "merchant.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key + certs)
        return path, password


def _resolve(value: object, what: str, *, text_is_path: bool) -> object:
    """A ``file://`` URL becomes a ``Path``, and so does other text that is not PEM when
    ``text_is_path`` or when it names an existing file; anything else is unchanged."""
    if isinstance(value, str) and "-----BEGIN" not in value:
        if value[:7].lower() == "file://":
            parts = urlsplit(value)
            if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
                raise InvalidArgumentError(
                    f"{what}: {value} is not an absolute file URL; write file:///absolute/path"
                )
            return Path(unquote(parts.path))
        if text_is_path or ("\n" not in value and len(value) < 4096 and os.path.isfile(value)):
            return Path(value)
    return value


def _read(value: object, what: str) -> tuple[bytes, str]:
    if isinstance(value, os.PathLike):
        path = os.fsdecode(os.fspath(value))
        try:
            with open(path, "rb") as handle:
                return handle.read(), f"{what} ({path})"
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise InvalidArgumentError(f"{what}: {path} cannot be read: {reason}") from None
    if isinstance(value, str):
        return value.encode("utf-8"), what
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), what
    raise InvalidArgumentError(
        f"{what}: expected PEM text or bytes, PKCS#12 bytes, a file:// URL, a path or an "
        f"x509.Certificate, got {type(value).__name__}"
    )


def _password(value: object) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    raise InvalidArgumentError(
        f"merchant_key_password must be str or bytes, got {type(value).__name__}"
    )


def _from_pkcs12(data: bytes, password: bytes | None, where: str) -> MerchantIdentity:
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, password)
    except UnsupportedAlgorithm:
        raise InvalidArgumentError(
            f"{where}: is a PKCS#12 file sealed with an algorithm this OpenSSL no longer "
            "enables; convert it to PEM (openssl pkcs12 -legacy -nodes) and pass "
            "merchant_cert/merchant_key"
        ) from None
    except (ValueError, TypeError):
        hint = (
            "wrong merchant_key_password, or not a PKCS#12 file"
            if password is not None
            else "if it is a PKCS#12 file, give its passphrase as merchant_key_password "
            "(WeChat Pay's apiclient_cert.p12 uses the mchid)"
        )
        raise InvalidArgumentError(
            f"{where}: is neither a PEM/DER certificate nor a PKCS#12 file it can open ({hint})"
        ) from None
    if cert is None or key is None:
        missing = "certificate" if cert is None else "private key"
        raise InvalidArgumentError(f"{where}: the PKCS#12 file holds no {missing}")
    if not isinstance(key, rsa.RSAPrivateKey):
        raise InvalidArgumentError(f"{where}: the PKCS#12 key is not RSA; WeChat Pay needs RSA")
    return MerchantIdentity(cert, load_private_key(key, what=where), tuple(extra))


def _certificates(data: bytes, where: str) -> list[x509.Certificate] | None:
    """The certificates of a PEM or DER file; None when it is neither (PKCS#12?)."""
    if b"-----BEGIN" in data:
        if b"-----BEGIN CERTIFICATE-----" not in data:
            raise InvalidArgumentError(f"{where}: holds no PEM CERTIFICATE")
        try:
            return x509.load_pem_x509_certificates(data)
        except ValueError:
            raise InvalidArgumentError(f"{where}: has a damaged PEM CERTIFICATE") from None
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        return None


def load_merchant_identity(
    merchant_cert: object,
    merchant_key: object,
    merchant_key_password: object = None,
    *,
    fallback_key: rsa.RSAPrivateKey | None = None,
    fallback_source: object = None,
) -> MerchantIdentity | None:
    """The merchant certificate and key, loaded and matched; None when none is configured.

    ``merchant_cert``: PEM (one file may hold the key too), DER, or a PKCS#12 file (``.p12``,
    whose passphrase is ``merchant_key_password``), as bytes, text, a ``file://`` URL, a path
    or an ``x509.Certificate``. ``merchant_key``: as ``private_key`` (encrypted PEM uses
    ``merchant_key_password``); without it, a key in the PEM file or ``fallback_key`` (the
    APIv3 ``private_key``, usually the same ``apiclient_key.pem``) is used.
    ``fallback_source`` is what ``fallback_key`` was loaded from: a ``merchant_key`` equal to
    it is not loaded (and checked) a second time.
    """
    password = _password(merchant_key_password)
    if merchant_cert is None:
        if merchant_key is not None or password is not None:
            given = "merchant_key" if merchant_key is not None else "merchant_key_password"
            raise InvalidArgumentError(f"{given} is given but merchant_cert is not")
        return None
    chain: list[x509.Certificate] | None
    if isinstance(merchant_cert, x509.Certificate):
        chain, data, where = [merchant_cert], b"", "merchant_cert"
    else:
        source = _resolve(merchant_cert, "merchant_cert", text_is_path=True)
        data, where = _read(source, "merchant_cert")
        chain = _certificates(data, where)
    if chain is None:
        identity = _from_pkcs12(data, password, where)
        if merchant_key is not None:
            raise InvalidArgumentError(
                f"{where}: is a PKCS#12 file, which holds its own key: leave merchant_key out"
            )
        return identity

    key_source: object
    if (
        merchant_key is not None
        and fallback_key is not None
        and type(merchant_key) is type(fallback_source)
        and merchant_key == fallback_source
    ):
        key_source, key_what = fallback_key, "merchant_key"
    elif merchant_key is not None:
        key_source, key_what = (
            _resolve(merchant_key, "merchant_key", text_is_path=False),
            "merchant_key",
        )
    elif b"PRIVATE KEY-----" in data:
        key_source, key_what = data, where
    elif fallback_key is not None:
        key_source, key_what = fallback_key, "private_key (used as merchant_key)"
    else:
        raise InvalidArgumentError(
            "merchant_key is required with a PEM/DER merchant_cert (the apiclient_key.pem)"
        )
    passphrase = None if isinstance(key_source, rsa.RSAPrivateKey) else password
    key = load_private_key(
        key_source,  # type: ignore[arg-type]  # checked and reported by the loader
        passphrase=passphrase,
        what=key_what,
    )
    leaf = chain[0]
    try:
        cert_key = leaf.public_key()
    except (UnsupportedAlgorithm, ValueError):
        cert_key = None
    if not isinstance(cert_key, rsa.RSAPublicKey):
        raise InvalidArgumentError(f"{where}: is not an RSA certificate; WeChat Pay needs RSA")
    if cert_key.public_numbers() != key.public_key().public_numbers():
        raise InvalidArgumentError(
            f"{key_what} is not the key of {where} (certificate serial "
            f"{certificate_serial(leaf)})"
        )
    return MerchantIdentity(leaf, key, tuple(chain[1:]))
