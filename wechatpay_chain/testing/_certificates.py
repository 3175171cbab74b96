"""``GET v3/certificates`` on the fake server: published platform certificates, rotation.

WeChat Pay answers the platform certificates encrypted with the asking merchant's APIv3 key
(AES-256-GCM, associated data ``certificate``). ``mode`` chooses what the endpoint does:

- ``"certificate"``: answer the published certificates (the default);
- ``"public_key_only"``: 404 ``RESOURCE_NOT_EXISTS``, as for merchants that only have a
  platform public key (``PUB_KEY_ID_…``);
- ``"failing"``: 500 ``SYSTEM_ERROR``.
"""

from __future__ import annotations

import secrets
import string
import threading
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .. import crypto

if TYPE_CHECKING:
    from ._core import FakeRequest, PlatformSigner, Server

__all__ = ["MODES", "PlatformCertificates", "install", "issue_certificate"]

MODES = frozenset({"certificate", "public_key_only", "failing"})
TEMPLATE = "v3/certificates"
_CHINA = timezone(timedelta(hours=8))
_NONCE_ALPHABET = string.ascii_letters + string.digits


def issue_certificate(
    key: rsa.RSAPrivateKey,
    *,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    days: float = 365,
) -> x509.Certificate:
    """A self-signed platform certificate with a random serial and the given validity."""
    now = datetime.now(timezone.utc)
    start = not_before or now - timedelta(days=1)
    end = not_after or now + timedelta(days=days)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA")])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .sign(key, hashes.SHA256())
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(_CHINA).isoformat(timespec="seconds")


class PlatformCertificates:
    """What ``GET v3/certificates`` publishes, and how many times it was downloaded."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._lock = threading.Lock()
        self.mode = "certificate"
        #: The certificates the endpoint answers, oldest first.
        self.published: list[PlatformSigner] = [server.certificate_signer]
        #: Successful and failed answers of the endpoint.
        self.downloads = 0

    def issue(
        self,
        *,
        days: float = 365,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        publish: bool = True,
    ) -> PlatformSigner:
        """A new platform certificate (and key), published unless ``publish=False``."""
        from ._core import PlatformSigner, generate_key

        key = generate_key()
        certificate = issue_certificate(key, not_before=not_before, not_after=not_after, days=days)
        signer = PlatformSigner(crypto.certificate_serial(certificate), key, certificate)
        if publish:
            with self._lock:
                self.published = [*self.published, signer]
        return signer

    def rotate(self, *, days: float = 365) -> PlatformSigner:
        """Publish a new certificate and sign every answer with it from now on."""
        signer = self.issue(days=days)
        self._server.certificate_signer = signer
        self._server.mode = "certificate"
        return signer

    def answer(self, request: FakeRequest) -> Any:
        from ._core import Reply

        with self._lock:
            self.downloads += 1
            mode, published = self.mode, list(self.published)
        if mode == "public_key_only":
            return Reply(
                404,
                json={
                    "code": "RESOURCE_NOT_EXISTS",
                    "message": "无可用的平台证书，请在商户平台-API安全申请使用微信支付公钥",
                },
            )
        if mode == "failing":
            return Reply(500, json={"code": "SYSTEM_ERROR", "message": "系统错误"})
        merchant = self._server.merchants[request.mchid or self._server.merchant.mchid]
        return {"data": [self._entry(signer, merchant.apiv3_key) for signer in published]}

    @staticmethod
    def _entry(signer: PlatformSigner, apiv3_key: str) -> dict[str, Any]:
        assert signer.certificate is not None
        nonce = "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(12))
        return {
            "serial_no": signer.serial,
            "effective_time": _iso(signer.certificate.not_valid_before_utc),
            "expire_time": _iso(signer.certificate.not_valid_after_utc),
            "encrypt_certificate": {
                "algorithm": "AEAD_AES_256_GCM",
                "nonce": nonce,
                "associated_data": "certificate",
                "ciphertext": crypto.aes_gcm_encrypt(
                    signer.public, apiv3_key, nonce, "certificate"
                ),
            },
        }


def install(server: Server) -> None:
    """Publish the server's certificate on ``GET v3/certificates``."""
    certificates = PlatformCertificates(server)
    server.state["platform_certificates"] = certificates
    server.route("GET", TEMPLATE, certificates.answer)
