"""The platform keys a client trusts: certificates by serial, public keys by ``PUB_KEY_ID_…``."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from .._exceptions import InvalidArgumentError, VerificationError
from .keys import certificate_serial, certificate_validity, load_certificate, load_public_key
from .rsa import verify_sha256_rsa

__all__ = ["PlatformKey", "PlatformKeys"]


@dataclass(frozen=True, slots=True)
class PlatformKey:
    """One trusted key; ``not_after`` is set for certificates (public keys do not expire)."""

    serial: str
    key: rsa.RSAPublicKey
    not_before: datetime | None = None
    not_after: datetime | None = None


def load_platform_key(serial: str, value: object) -> PlatformKey:
    """A certificate or a public key given in ``certs``; a certificate must carry ``serial``."""
    if not isinstance(serial, str) or not serial:
        raise InvalidArgumentError(f"certs keys must be non-empty str serials, got {serial!r}")
    what = f"certs[{serial!r}]"
    cert: x509.Certificate | None = None
    if isinstance(value, x509.Certificate):
        cert = value
    elif not isinstance(value, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        try:
            cert = load_certificate(value, what=what)  # type: ignore[arg-type]
        except InvalidArgumentError:
            cert = None
    if cert is None:
        return PlatformKey(serial, load_public_key(value, what=what))  # type: ignore[arg-type]
    actual = certificate_serial(cert)
    if actual != serial.upper():
        raise InvalidArgumentError(
            f"{what} is a certificate with serial {actual!r}, not {serial!r}"
        )
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise InvalidArgumentError(f"{what} is not an RSA certificate")
    not_before, not_after = certificate_validity(cert)
    return PlatformKey(actual, public, not_before, not_after)


class PlatformKeys(Mapping[str, PlatformKey]):
    """Serial -> trusted key. Additions replace the whole dict, so readers never lock;
    writers (refreshes on several loops or threads) take a lock, so none undoes another's."""

    def __init__(self, certs: Mapping[str, object] | None = None) -> None:
        entries: dict[str, PlatformKey] = {}
        if certs is not None:
            if not isinstance(certs, Mapping):
                raise InvalidArgumentError(
                    f"certs must be a mapping of serial -> certificate or public key, "
                    f"got {type(certs).__name__}"
                )
            if not certs:
                raise InvalidArgumentError(
                    "certs is empty: give at least one platform certificate or public key "
                    "(PUB_KEY_ID_…), or leave it out for APIv2-only use"
                )
            for serial, value in certs.items():
                entry = load_platform_key(serial, value)
                entries[entry.serial] = entry
        self._entries = entries
        self._lock = threading.Lock()

    def __getitem__(self, serial: str) -> PlatformKey:
        return self._entries[serial]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<PlatformKeys {sorted(self._entries)}>"

    def add(self, *entries: PlatformKey) -> None:
        with self._lock:
            merged = dict(self._entries)
            for entry in entries:
                merged[entry.serial] = entry
            self._entries = merged

    def newest(self) -> PlatformKey:
        """The key to encrypt sensitive fields with: a public key, else the latest certificate."""
        if not self._entries:
            raise InvalidArgumentError("certs is empty: no platform key to encrypt with")
        far = datetime.max.replace(tzinfo=timezone.utc)
        return max(self._entries.values(), key=lambda e: e.not_after or far)

    def verify(
        self, serial: str, message: bytes, signature: str, *, now: datetime | float
    ) -> None:
        """Raise VerificationError unless ``signature`` of ``message`` verifies by ``serial``.

        ``now`` (a datetime, or a unix time) is checked against a certificate's validity.
        """
        entry = self._entries.get(serial)
        if entry is None:
            known = ", ".join(sorted(self._entries)) or "none"
            raise VerificationError(
                f"signed by serial {serial[:64]!r}, which certs does not hold; known: {known}"
            )
        if entry.not_after is not None or entry.not_before is not None:
            when = now if isinstance(now, datetime) else datetime.fromtimestamp(now, timezone.utc)
            if entry.not_after is not None and when > entry.not_after:
                raise VerificationError(
                    f"platform certificate {serial} expired at {entry.not_after}"
                )
            if entry.not_before is not None and when < entry.not_before:
                raise VerificationError(
                    f"platform certificate {serial} is not valid before {entry.not_before}"
                )
        if not verify_sha256_rsa(message, signature, entry.key):
            raise VerificationError(f"signature by {serial} does not verify")
