"""PlatformKeys: certificates are trusted only inside their validity dates."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from wechatpay_chain import PlatformKeys, VerificationError, crypto
from wechatpay_chain.testing._fake import generate_key

KEY = generate_key()
NOW = datetime(2026, 11, 22, tzinfo=timezone.utc)


def certificate(not_before: datetime, not_after: datetime) -> tuple[str, bytes]:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(KEY.public_key())
        .serial_number(0x5157F09EFDC096DE15EBE81A47057A7232F1B8E1)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(KEY, hashes.SHA256())
    )
    return crypto.certificate_serial(cert), cert.public_bytes(serialization.Encoding.PEM)


def signed(message: bytes) -> str:
    return crypto.sign_sha256_rsa(message, KEY)


def test_certificate_inside_its_dates_verifies() -> None:
    serial, pem = certificate(NOW - timedelta(days=1), NOW + timedelta(days=1))
    PlatformKeys({serial: pem}).verify(serial, b"m", signed(b"m"), now=NOW)


def test_expired_certificate_is_refused() -> None:
    serial, pem = certificate(NOW - timedelta(days=10), NOW - timedelta(days=1))
    with pytest.raises(VerificationError, match="expired at"):
        PlatformKeys({serial: pem}).verify(serial, b"m", signed(b"m"), now=NOW)


def test_certificate_not_yet_valid_is_refused() -> None:
    serial, pem = certificate(NOW + timedelta(days=1), NOW + timedelta(days=10))
    with pytest.raises(VerificationError, match="not valid before"):
        PlatformKeys({serial: pem}).verify(serial, b"m", signed(b"m"), now=NOW)


def test_wrong_signature_and_unknown_serial_are_refused() -> None:
    serial, pem = certificate(NOW - timedelta(days=1), NOW + timedelta(days=1))
    keys = PlatformKeys({serial: pem})
    with pytest.raises(VerificationError, match="does not verify"):
        keys.verify(serial, b"m", signed(b"other"), now=NOW)
    with pytest.raises(VerificationError, match="which certs does not hold"):
        keys.verify("ABC", b"m", signed(b"m"), now=NOW)
