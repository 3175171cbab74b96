"""The cryptography WeChat Pay needs, as small pure functions.

- keys and certificates: ``load_private_key``, ``load_public_key``, ``load_certificate``,
  ``certificate_serial``, ``certificate_validity``;
- RSA: ``sign_sha256_rsa`` / ``verify_sha256_rsa`` (request and answer signatures),
  OAEP and PKCS#1 v1.5 encryption of sensitive fields;
- AES-256: GCM (APIv3 notifications and certificates), ECB (APIv2 refund ``req_info``);
- hashes: MD5, SHA-1, SHA-256, SM3, HMAC-SHA256, constant-time ``equals``, ``file_digest``.

Bad keys or arguments raise ``InvalidArgumentError``; failed decryption raises
``DecryptionError``. No message carries a key, a passphrase or a decrypted value.
"""

from .aes import (
    aes_ecb_decrypt,
    aes_ecb_encrypt,
    aes_gcm_decrypt,
    aes_gcm_decrypt_bytes,
    aes_gcm_encrypt,
)
from .hashes import (
    HASH_ALGORITHMS,
    equals,
    file_digest,
    hmac_sha256,
    md5,
    sha1,
    sha256,
    sm3,
)
from .keys import (
    MIN_RSA_KEY_SIZE,
    CertificateLike,
    PrivateKeyLike,
    PublicKeyLike,
    certificate_serial,
    certificate_validity,
    load_certificate,
    load_private_key,
    load_public_key,
)
from .rsa import (
    rsa_decrypt_oaep,
    rsa_decrypt_pkcs1v15,
    rsa_encrypt_oaep,
    rsa_encrypt_pkcs1v15,
    sign_sha256_rsa,
    verify_sha256_rsa,
)

__all__ = [
    "HASH_ALGORITHMS",
    "MIN_RSA_KEY_SIZE",
    "CertificateLike",
    "PrivateKeyLike",
    "PublicKeyLike",
    "aes_ecb_decrypt",
    "aes_ecb_encrypt",
    "aes_gcm_decrypt",
    "aes_gcm_decrypt_bytes",
    "aes_gcm_encrypt",
    "certificate_serial",
    "certificate_validity",
    "equals",
    "file_digest",
    "hmac_sha256",
    "load_certificate",
    "load_private_key",
    "load_public_key",
    "md5",
    "rsa_decrypt_oaep",
    "rsa_decrypt_pkcs1v15",
    "rsa_encrypt_oaep",
    "rsa_encrypt_pkcs1v15",
    "sha1",
    "sha256",
    "sign_sha256_rsa",
    "sm3",
    "verify_sha256_rsa",
]
