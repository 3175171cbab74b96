"""Loading keys and certificates: every accepted shape, and errors that say why without leaking."""

from __future__ import annotations

import base64
import datetime as dt
import re
from pathlib import Path

import pytest
from _keys_helpers import (
    NOT_AFTER,
    NOT_BEFORE,
    WECHAT_SERIAL,
    ec_key,
    private_der,
    private_pem,
    public_der,
    public_pem,
    rsa_key,
    same_key,
    self_signed,
)
from _paths import FIXTURES
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from wechatpay_chain import InvalidArgumentError
from wechatpay_chain.crypto import (
    MIN_RSA_KEY_SIZE,
    certificate_serial,
    certificate_validity,
    load_certificate,
    load_private_key,
    load_public_key,
)

FIXTURES = FIXTURES
PKCS1 = serialization.PrivateFormat.TraditionalOpenSSL
PKCS8 = serialization.PrivateFormat.PKCS8
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
RSA_PUBLIC = serialization.PublicFormat.PKCS1
PASSPHRASE = "correct horse battery"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def pem_body(pem: bytes) -> str:
    """The base64 lines of a PEM, joined: the key material a message must never show."""
    return "".join(line for line in pem.decode().splitlines() if not line.startswith("-----"))


def assert_no_material(message: str, *secrets: str) -> None:
    """No 12-character run of any secret appears in ``message``."""
    for secret in secrets:
        for start in range(0, max(1, len(secret) - 12), 7):
            assert secret[start : start + 12] not in message


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa_key()


# --- private keys: accepted shapes ---------------------------------------------------------


@pytest.mark.parametrize(
    "shape",
    [
        "pkcs8_pem_str",
        "pkcs8_pem_bytes",
        "pkcs1_pem_str",
        "pkcs1_pem_bytes",
        "pkcs8_der_b64",
        "pkcs1_der_b64",
        "pkcs8_der_bytes",
        "pkcs1_der_bytes",
        "pem_with_literal_backslash_n",
        "pem_with_crlf",
        "certificate_then_key_bundle",
    ],
)
def test_private_key_loads_from_every_format(key: rsa.RSAPrivateKey, shape: str) -> None:
    values: dict[str, str | bytes] = {
        "pkcs8_pem_str": private_pem(key).decode(),
        "pkcs8_pem_bytes": private_pem(key),
        "pkcs1_pem_str": private_pem(key, PKCS1).decode(),
        "pkcs1_pem_bytes": private_pem(key, PKCS1),
        "pkcs8_der_b64": b64(private_der(key)),
        "pkcs1_der_b64": b64(private_der(key, PKCS1)),
        "pkcs8_der_bytes": private_der(key),
        "pkcs1_der_bytes": private_der(key, PKCS1),
        "pem_with_literal_backslash_n": private_pem(key).decode().replace("\n", "\\n"),
        "pem_with_crlf": private_pem(key).replace(b"\n", b"\r\n"),
        "certificate_then_key_bundle": (
            self_signed(key).public_bytes(serialization.Encoding.PEM) + private_pem(key)
        ),
    }
    loaded = load_private_key(values[shape])
    assert isinstance(loaded, rsa.RSAPrivateKey)
    assert loaded.private_numbers() == key.private_numbers()


@pytest.mark.parametrize("passphrase", [PASSPHRASE, PASSPHRASE.encode()])
def test_encrypted_pkcs8_loads_with_its_passphrase(
    key: rsa.RSAPrivateKey, passphrase: str | bytes
) -> None:
    pem = private_pem(key, PKCS8, PASSPHRASE.encode())
    assert b"ENCRYPTED PRIVATE KEY" in pem
    assert same_key(load_private_key(pem, passphrase=passphrase), key)


def test_private_key_loads_from_file_url_and_path(key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    path = tmp_path / "dir with space" / "apiclient_key.pem"
    path.parent.mkdir()
    path.write_bytes(private_pem(key))
    assert same_key(load_private_key(path), key)
    assert same_key(load_private_key(path.as_uri()), key)  # percent-encoded space
    assert same_key(load_private_key("file://" + str(path)), key)  # as the PHP SDK writes it
    assert same_key(load_private_key("file://localhost" + str(path)), key)


def test_private_key_object_is_returned_as_is(key: rsa.RSAPrivateKey) -> None:
    assert load_private_key(key) is key


# --- private keys: errors ------------------------------------------------------------------


def test_missing_file_names_the_setting_the_url_and_the_reason() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        load_private_key("file:///nonexistent/dir/apiclient_key.pem")
    assert str(info.value) == (
        "private_key: file:///nonexistent/dir/apiclient_key.pem cannot be read: "
        "No such file or directory"
    )


def test_missing_path_uses_the_given_setting_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match=r"^merchant_key: .*missing\.pem cannot be read"):
        load_private_key(tmp_path / "missing.pem", what="merchant_key")


def test_relative_file_url_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="not an absolute file URL"):
        load_private_key("file://keys/apiclient_key.pem")


def test_bare_path_string_gets_a_hint() -> None:
    with pytest.raises(InvalidArgumentError, match=r"file:///absolute/path or a pathlib.Path"):
        load_private_key("/etc/wechatpay/apiclient_key.pem")


def test_garbage_is_not_a_private_key() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        load_private_key("definitely not a key")
    assert str(info.value) == "private_key: not a PEM or base64 DER RSA private key"


def test_garbage_in_a_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_text("hello")
    with pytest.raises(InvalidArgumentError, match=re.escape(f"private_key ({path}): not a PEM")):
        load_private_key(path)


@pytest.mark.parametrize("as_pem", [False, True])
def test_ec_key_is_refused_because_wechat_pay_needs_rsa(as_pem: bool) -> None:
    value = private_pem(ec_key()) if as_pem else ec_key()
    with pytest.raises(InvalidArgumentError) as info:
        load_private_key(value)  # type: ignore[arg-type]
    assert str(info.value) == "private_key: is an EC key; WeChat Pay needs RSA"


def test_ed25519_key_is_refused() -> None:
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(InvalidArgumentError, match="is an Ed25519 key; WeChat Pay needs RSA"):
        load_private_key(pem)


def test_small_rsa_key_is_refused() -> None:
    small = rsa_key("small", 1024)
    for value in (small, private_pem(small)):
        with pytest.raises(InvalidArgumentError, match=r"is a 1024-bit RSA key; .*at least 2048"):
            load_private_key(value)
    assert MIN_RSA_KEY_SIZE == 2048


def test_larger_rsa_key_is_accepted() -> None:
    big = rsa_key("big", 3072)
    assert load_private_key(private_pem(big)).key_size == 3072


def test_public_key_is_not_a_private_key(key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(InvalidArgumentError, match="is a public key"):
        load_private_key(key.public_key())  # type: ignore[arg-type]


def test_certificate_pem_is_not_a_private_key(key: rsa.RSAPrivateKey) -> None:
    pem = self_signed(key).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(InvalidArgumentError, match="holds no private key, only PEM CERTIFICATE"):
        load_private_key(pem)


def test_wrong_type_is_named() -> None:
    with pytest.raises(InvalidArgumentError, match="got int"):
        load_private_key(42)  # type: ignore[arg-type]


def test_encrypted_key_without_passphrase_asks_for_one(key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(InvalidArgumentError, match=r"encrypted; give its passphrase \(Client\("):
        load_private_key(private_pem(key, PKCS8, PASSPHRASE.encode()))


def test_wrong_passphrase_is_reported_without_the_passphrase(key: rsa.RSAPrivateKey) -> None:
    pem = private_pem(key, PKCS8, PASSPHRASE.encode())
    with pytest.raises(InvalidArgumentError) as info:
        load_private_key(pem, passphrase="wrong passphrase 123")
    message = str(info.value)
    assert "cannot be decrypted with the given passphrase" in message
    assert "wrong passphrase 123" not in message
    assert PASSPHRASE not in message
    assert_no_material(message, pem_body(pem))


def test_passphrase_for_a_plain_key_is_a_configuration_error(key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(InvalidArgumentError, match="not encrypted") as info:
        load_private_key(private_pem(key), passphrase="s3cret-passphrase")
    assert "s3cret-passphrase" not in str(info.value)


def _damaged_forms(key: rsa.RSAPrivateKey) -> dict[str, str]:
    pem = private_pem(key).decode()
    lines = pem.splitlines()
    der_b64 = b64(private_der(key))
    middle = len(lines) // 2
    return {
        "line_dropped": "\n".join(lines[:middle] + lines[middle + 1 :]),
        "char_changed": pem.replace(lines[middle], "!" + lines[middle][1:]),
        "no_end_line": "\n".join(lines[:-1]),
        "body_truncated": "\n".join([*lines[:3], lines[-1]]),
        "der_b64_truncated": der_b64[: len(der_b64) // 2],
        "der_b64_with_junk": der_b64[:100] + "*" + der_b64[101:],
    }


@pytest.mark.parametrize(
    "form",
    [
        "line_dropped",
        "char_changed",
        "no_end_line",
        "body_truncated",
        "der_b64_truncated",
        "der_b64_with_junk",
    ],
)
def test_damaged_key_error_never_contains_key_material(key: rsa.RSAPrivateKey, form: str) -> None:
    value = _damaged_forms(key)[form]
    with pytest.raises(InvalidArgumentError) as info:
        load_private_key(value)
    err = info.value
    assert str(err).startswith("private_key: ")
    assert_no_material(str(err) + repr(err), pem_body(private_pem(key)), b64(private_der(key)))
    # Nothing from cryptography rides along in the traceback either.
    assert err.__cause__ is None
    assert err.__context__ is None or err.__suppress_context__


def test_openssh_key_gets_a_conversion_hint() -> None:
    pem = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\n"
        "b3BlbnNzaC1rZXktdjEAAAAA\n"
        "-----END OPENSSH PRIVATE KEY-----\n"
    )
    with pytest.raises(InvalidArgumentError, match="OpenSSH key; convert it"):
        load_private_key(pem)


# --- public keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape",
    [
        "spki_pem",
        "pkcs1_pem",
        "spki_der_b64",
        "pkcs1_der_b64",
        "spki_der_bytes",
        "certificate_pem",
        "certificate_der",
        "certificate_der_b64",
        "public_key_object",
        "private_key_object",
        "certificate_object",
    ],
)
def test_public_key_loads_from_every_format(key: rsa.RSAPrivateKey, shape: str) -> None:
    cert = self_signed(key)
    values: dict[str, object] = {
        "spki_pem": public_pem(key).decode(),
        "pkcs1_pem": public_pem(key, RSA_PUBLIC),
        "spki_der_b64": b64(public_der(key)),
        "pkcs1_der_b64": b64(public_der(key, RSA_PUBLIC)),
        "spki_der_bytes": public_der(key),
        "certificate_pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "certificate_der": cert.public_bytes(serialization.Encoding.DER),
        "certificate_der_b64": b64(cert.public_bytes(serialization.Encoding.DER)),
        "public_key_object": key.public_key(),
        "private_key_object": key,
        "certificate_object": cert,
    }
    loaded = load_public_key(values[shape])  # type: ignore[arg-type]
    assert isinstance(loaded, rsa.RSAPublicKey)
    assert same_key(loaded, key)


def test_public_key_object_is_returned_as_is(key: rsa.RSAPrivateKey) -> None:
    public = key.public_key()
    assert load_public_key(public) is public


def test_public_key_loads_from_file_url_and_path(key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    path = tmp_path / "pub_key.pem"
    path.write_bytes(public_pem(key))
    assert same_key(load_public_key(path), key)
    assert same_key(load_public_key(path.as_uri()), key)


def test_platform_public_key_from_the_getpublickey_answer_loads() -> None:
    xml = (FIXTURES / "getpublickey.response.sample.xml").read_text()
    match = re.search(r"<!\[CDATA\[(-----BEGIN RSA PUBLIC KEY-----.*?)\]\]>", xml, re.DOTALL)
    assert match is not None
    assert load_public_key(match.group(1)).key_size == 2048


def test_private_key_text_is_refused_as_public_key(key: rsa.RSAPrivateKey) -> None:
    pem = private_pem(key)
    with pytest.raises(InvalidArgumentError, match="is a private key; give the public key") as info:
        load_public_key(pem, what="certs['PUB_KEY_ID_01']")
    assert str(info.value).startswith("certs['PUB_KEY_ID_01']: ")
    assert_no_material(str(info.value), pem_body(pem))


def test_ec_certificate_is_refused_as_public_key() -> None:
    cert = self_signed(ec_key())
    for value in (cert, cert.public_bytes(serialization.Encoding.PEM)):
        with pytest.raises(InvalidArgumentError, match="is an EC key; WeChat Pay needs RSA"):
            load_public_key(value)


def test_garbage_is_not_a_public_key() -> None:
    with pytest.raises(InvalidArgumentError, match=r"^public_key: not a PEM or base64 DER"):
        load_public_key(b"\x00\x01garbage")


def test_damaged_public_pem_is_reported(key: rsa.RSAPrivateKey) -> None:
    lines = public_pem(key).decode().splitlines()
    damaged = "\n".join([lines[0], lines[1][:-3] + "!!!", *lines[2:]])
    with pytest.raises(InvalidArgumentError, match="damaged PEM PUBLIC KEY"):
        load_public_key(damaged)


# --- certificates --------------------------------------------------------------------------


def test_certificate_loads_from_every_format(key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    cert = self_signed(key)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    der = cert.public_bytes(serialization.Encoding.DER)
    path = tmp_path / "cert.pem"
    path.write_bytes(pem)
    for value in (pem, pem.decode(), der, b64(der), path, path.as_uri()):
        assert load_certificate(value) == cert
    assert load_certificate(cert) is cert


def test_key_is_not_a_certificate(key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(InvalidArgumentError, match=r"^certificate: holds no certificate"):
        load_certificate(public_pem(key))
    with pytest.raises(InvalidArgumentError, match=r"^platform_cert: not a PEM or base64 DER"):
        load_certificate(b64(public_der(key)), what="platform_cert")


@pytest.mark.parametrize(
    ("serial", "expected"),
    [
        (WECHAT_SERIAL, "3775B6A45ACD588826D15E583A95F5DD00000000"),
        (0x0ABC, "0ABC"),
        (0x1, "01"),
        (0xFF, "FF"),
        (0x100, "0100"),
        (0x4F0E9A2B7C, "4F0E9A2B7C"),
    ],
)
def test_certificate_serial_is_whole_bytes_upper_hex(serial: int, expected: str) -> None:
    cert = self_signed(rsa_key(), serial=serial)
    assert certificate_serial(cert) == expected
    assert certificate_serial(cert.public_bytes(serialization.Encoding.PEM)) == expected


def test_certificate_validity_is_aware_utc(key: rsa.RSAPrivateKey) -> None:
    not_before, not_after = certificate_validity(self_signed(key))
    assert (not_before, not_after) == (NOT_BEFORE, NOT_AFTER)
    assert not_before.utcoffset() == dt.timedelta(0)
    assert not_after.tzinfo is not None
