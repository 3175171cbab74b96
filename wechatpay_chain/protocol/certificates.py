"""Platform certificates as ``GET v3/certificates`` answers them: decrypted and verified.

Each certificate in the list is sealed with AES-256-GCM under the merchant's APIv3 key. A
downloaded certificate is trusted because only WeChat Pay and the merchant know that key, and
the answer's own signature must verify too: with a key the client already trusts when it
names one, otherwise (bootstrap, the first download or a rotation) with the certificate of
that serial inside the answer, as WeChat Pay documents. Certificates outside their validity
dates are never trusted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .. import crypto
from .._exceptions import DecryptionError, InvalidArgumentError, VerificationError
from ..crypto.platform import PlatformKey, PlatformKeys
from . import jsonsafe
from . import v3 as _v3

__all__ = ["PlatformCertificate", "check_against", "decrypt_certificates", "verify_download"]


@dataclass(frozen=True, slots=True)
class PlatformCertificate:
    """A verified platform certificate: serial, validity and the certificate itself."""

    serial: str
    effective_time: datetime
    expire_time: datetime
    certificate: x509.Certificate = field(repr=False, compare=False)
    key: rsa.RSAPublicKey = field(repr=False, compare=False)

    @property
    def pem(self) -> bytes:
        """The certificate as PEM, as saved in ``wechatpay_<serial>.pem``."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def platform_key(self) -> PlatformKey:
        return PlatformKey(self.serial, self.key, self.effective_time, self.expire_time)


def _field(entry: dict[str, Any], name: str, where: str) -> str:
    value = entry.get(name)
    if not isinstance(value, str) or not value:
        raise VerificationError(f"{where}: {name} is missing or not a string")
    return value


def _decrypt_entry(entry: object, apiv3_key: bytes, index: int) -> PlatformCertificate:
    where = f"v3/certificates data[{index}]"
    if not isinstance(entry, dict):
        raise VerificationError(f"{where} is not an object")
    serial = _field(entry, "serial_no", where).upper()
    where = f"certificate {serial[:64]}"
    sealed = entry.get("encrypt_certificate")
    if not isinstance(sealed, dict):
        raise VerificationError(f"{where}: encrypt_certificate is missing")
    algorithm = _field(sealed, "algorithm", where)
    if algorithm != "AEAD_AES_256_GCM":
        raise VerificationError(f"{where}: algorithm {algorithm[:32]!r} is not AEAD_AES_256_GCM")
    associated = sealed.get("associated_data") or ""
    if not isinstance(associated, str):
        raise VerificationError(f"{where}: associated_data is not a string")
    try:
        pem = crypto.aes_gcm_decrypt_bytes(
            _field(sealed, "ciphertext", where),
            apiv3_key,
            _field(sealed, "nonce", where),
            associated,
        )
    except DecryptionError as exc:
        raise DecryptionError(f"{where}: {exc}") from None
    try:
        certificate = crypto.load_certificate(pem, what=where)
        key = crypto.load_public_key(certificate, what=where)
        actual = crypto.certificate_serial(certificate)
    except InvalidArgumentError as exc:
        raise VerificationError(str(exc)) from None
    if actual != serial:
        raise VerificationError(f"{where}: the decrypted certificate has serial {actual}")
    not_before, not_after = crypto.certificate_validity(certificate)
    return PlatformCertificate(serial, not_before, not_after, certificate, key)


def decrypt_certificates(
    body: bytes, apiv3_key: bytes, *, now: datetime
) -> tuple[list[PlatformCertificate], list[str]]:
    """The certificates of a ``v3/certificates`` answer valid at ``now``, and why the others
    were left out (expired, not yet valid).

    A malformed answer, a certificate whose serial is not the one announced, or one that
    does not decrypt raises: nothing of such an answer is trusted.
    """
    try:
        payload = jsonsafe.loads(body)
    except (ValueError, RecursionError):
        raise VerificationError("v3/certificates answer is not JSON") from None
    entries = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(entries, list):
        raise VerificationError("v3/certificates answer has no data list")
    valid: dict[str, PlatformCertificate] = {}
    rejected: list[str] = []
    for index, entry in enumerate(entries):
        cert = _decrypt_entry(entry, apiv3_key, index)
        if now < cert.effective_time:
            rejected.append(f"{cert.serial} is not valid before {cert.effective_time}")
        elif now > cert.expire_time:
            rejected.append(f"{cert.serial} expired at {cert.expire_time}")
        else:
            valid[cert.serial] = cert
    return list(valid.values()), rejected


def verify_download(
    headers: Mapping[str, str],
    body: bytes,
    certificates: Iterable[PlatformCertificate],
    trusted: PlatformKeys | None,
    *,
    now: float,
    bootstrap: bool = True,
) -> str:
    """Check the answer's signature; return the serial that signed it.

    A serial the client trusts is checked with that key. Otherwise, with ``bootstrap``, the
    answer must be signed by one of the (decrypted, valid) certificates it carries.
    """
    signed = _v3.signed_headers(headers, now=now)
    message = _v3.response_message(signed.timestamp, signed.nonce, body)
    serial = signed.serial
    if trusted is not None and serial in trusted:
        trusted.verify(
            serial, message, signed.signature, now=datetime.fromtimestamp(now, timezone.utc)
        )
        return serial
    own = {cert.serial: cert for cert in certificates}.get(serial.upper())
    if own is None:
        raise VerificationError(
            f"v3/certificates answer is signed by serial {serial[:64]!r}, which is neither "
            "trusted nor one of the valid certificates it carries"
        )
    if not bootstrap:
        raise VerificationError(
            f"v3/certificates answer is signed by {serial}, which is not trusted yet, and "
            "bootstrap=False forbids verifying it with the certificate it carries"
        )
    if not crypto.verify_sha256_rsa(message, signed.signature, own.key):
        raise VerificationError(f"v3/certificates answer: signature by {serial} does not verify")
    return serial


def check_against(trusted: PlatformKeys | None, certificates: list[PlatformCertificate]) -> None:
    """A serial the client trusts must come back with the same key."""
    if trusted is None:
        return
    for cert in certificates:
        known = trusted.get(cert.serial)
        if known is not None and known.key.public_numbers() != cert.key.public_numbers():
            raise VerificationError(
                f"downloaded certificate {cert.serial} has another key than the trusted "
                "certificate of that serial"
            )
