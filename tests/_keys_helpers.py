"""Test keys and certificates, generated once per test session (RSA generation is slow)."""

from __future__ import annotations

import datetime as dt
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

NOT_BEFORE = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
NOT_AFTER = dt.datetime(2029, 1, 1, tzinfo=dt.timezone.utc)
WECHAT_SERIAL = 0x3775B6A45ACD588826D15E583A95F5DD00000000


@cache
def rsa_key(name: str = "merchant", bits: int = 2048) -> rsa.RSAPrivateKey:
    """A fresh RSA key per ``name``; the same object for the whole session."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@cache
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def self_signed(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    serial: int = WECHAT_SERIAL,
    common_name: str = "1900000001",
) -> x509.Certificate:
    """A self-signed certificate for ``key`` with a chosen serial number."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .sign(key, hashes.SHA256())
    )


def private_pem(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8,
    passphrase: bytes | None = None,
) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, fmt, encryption)


def private_der(
    key: rsa.RSAPrivateKey,
    fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8,
) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, fmt, serialization.NoEncryption())


def public_pem(
    key: rsa.RSAPrivateKey,
    fmt: serialization.PublicFormat = serialization.PublicFormat.SubjectPublicKeyInfo,
) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, fmt)


def public_der(
    key: rsa.RSAPrivateKey,
    fmt: serialization.PublicFormat = serialization.PublicFormat.SubjectPublicKeyInfo,
) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, fmt)


def same_key(
    a: rsa.RSAPublicKey | rsa.RSAPrivateKey, b: rsa.RSAPublicKey | rsa.RSAPrivateKey
) -> bool:
    """Whether two keys share a modulus (the public halves are equal)."""
    pa = a.public_key() if isinstance(a, rsa.RSAPrivateKey) else a
    pb = b.public_key() if isinstance(b, rsa.RSAPrivateKey) else b
    return pa.public_numbers() == pb.public_numbers()
