"""A throwaway certificate authority for the fake server's TLS listener.

It issues the server certificate (for 127.0.0.1 and localhost) and merchant client
certificates the way WeChat Pay does: the subject's common name is the mchid, and the key is
the merchant's own RSA key (the same ``apiclient_key.pem`` that signs APIv3 requests).
The CA key is an EC key, so making a CA costs milliseconds, not an RSA key generation.

The certificates carry the extensions a public CA writes (key identifiers, critical basic
constraints, key usage): Python 3.13's default context verifies with ``VERIFY_X509_STRICT``,
which refuses a chain without them ("Missing Authority Key Identifier").
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import tempfile
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["TestCA", "pem"]

IssuedKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: IssuedKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wechatpay-chain fake"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _leaf_usage(public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> x509.KeyUsage:
    """Signing for every leaf; key encipherment too for RSA, as RSA key exchange needs it."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


class TestCA:
    """A self-signed CA that issues the fake server's and the merchants' certificates."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, name: str = "wechatpay-chain fake CA") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(timezone.utc)
        self._start = now - timedelta(days=1)
        self._end = now + timedelta(days=30)
        subject = _name(name)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._start)
            .not_valid_after(self._end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.pem = pem(self.certificate)
        self._issued: dict[tuple[str, int], bytes] = {}
        self._client_context: ssl.SSLContext | None = None

    def _issue(
        self,
        common_name: str,
        public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
        usage: x509.ObjectIdentifier,
        sans: list[x509.GeneralName] | None = None,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._start)
            .not_valid_after(self._end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_leaf_usage(public_key), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(self._key, hashes.SHA256())

    def issue_client(self, mchid: str, key: rsa.RSAPrivateKey) -> x509.Certificate:
        """A merchant API certificate (``apiclient_cert.pem``) for ``key``, CN = ``mchid``."""
        return self._issue(mchid, key.public_key(), ExtendedKeyUsageOID.CLIENT_AUTH)

    def client_pem(self, mchid: str, key: rsa.RSAPrivateKey) -> bytes:
        """PEM of ``issue_client(mchid, key)``, issued once per merchant and key."""
        slot = (mchid, key.public_key().public_numbers().n)
        found = self._issued.get(slot)
        if found is None:
            found = self._issued[slot] = pem(self.issue_client(mchid, key))
        return found

    def server_context(self) -> ssl.SSLContext:
        """A server context for 127.0.0.1/localhost that asks for (but does not require) a
        client certificate; one that is presented must chain to this CA or the handshake fails.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._issue(
            "127.0.0.1",
            key.public_key(),
            ExtendedKeyUsageOID.SERVER_AUTH,
            [
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.DNSName("localhost"),
            ],
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        # ssl reads a certificate chain from files only; they live just long enough to load.
        with tempfile.TemporaryDirectory(prefix="wechatpay-fake-") as folder:
            path = os.path.join(folder, "server.pem")
            with open(path, "wb") as handle:
                handle.write(_key_pem(key) + pem(cert))
            context.load_cert_chain(path)
        context.load_verify_locations(cadata=self.pem.decode("ascii"))
        # Optional, not required: a security=True endpoint answers CA_ERROR without one, and
        # APIv3 calls share the listener without presenting a certificate at all.
        context.verify_mode = ssl.CERT_OPTIONAL
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting this CA: the ``verify=`` of clients for the fake server.

        One context, shared by every client (as httpx shares one among its connections).
        """
        if self._client_context is None:
            self._client_context = ssl.create_default_context(cadata=self.pem.decode("ascii"))
        return self._client_context
