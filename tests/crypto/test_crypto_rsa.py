"""RSA signatures and encryption: round trips, interoperability, and failure behaviour."""

from __future__ import annotations

import base64

import pytest
from _keys_helpers import private_pem, public_pem, rsa_key, self_signed
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import given, settings
from hypothesis import strategies as st

from wechatpay_chain import DecryptionError, InvalidArgumentError
from wechatpay_chain.crypto import (
    rsa_decrypt_oaep,
    rsa_decrypt_pkcs1v15,
    rsa_encrypt_oaep,
    rsa_encrypt_pkcs1v15,
    sign_sha256_rsa,
    verify_sha256_rsa,
)

KEY = rsa_key()
OTHER = rsa_key("other")
PUBLIC = KEY.public_key()
# UTF-8 needs at most 4 bytes a character: 50 characters fit OAEP's 214-byte limit.
TEXT = st.text(max_size=50)
MESSAGE = "GET\n/v3/certificates\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n"


# --- signatures ----------------------------------------------------------------------------


def test_signature_is_pkcs1v15_sha256_base64() -> None:
    signature = sign_sha256_rsa(MESSAGE, KEY)
    raw = base64.b64decode(signature, validate=True)
    assert len(raw) == 256
    PUBLIC.verify(raw, MESSAGE.encode(), padding.PKCS1v15(), hashes.SHA256())  # raises if not


def test_str_and_bytes_messages_sign_alike() -> None:
    # PKCS#1 v1.5 signatures are deterministic.
    assert sign_sha256_rsa(MESSAGE, KEY) == sign_sha256_rsa(MESSAGE.encode(), KEY)


def test_signature_verifies_with_public_key_certificate_and_pem() -> None:
    signature = sign_sha256_rsa(MESSAGE, KEY)
    for public in (PUBLIC, self_signed(KEY), public_pem(KEY), KEY):
        assert verify_sha256_rsa(MESSAGE, signature, public)
    assert verify_sha256_rsa(MESSAGE.encode(), signature.encode(), PUBLIC)


def test_signing_accepts_anything_the_loader_accepts() -> None:
    assert sign_sha256_rsa(MESSAGE, private_pem(KEY)) == sign_sha256_rsa(MESSAGE, KEY)


def test_signing_with_a_bad_key_is_an_argument_error() -> None:
    with pytest.raises(InvalidArgumentError, match=r"^private_key: "):
        sign_sha256_rsa(MESSAGE, "not a key")


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "not base64!",
        "QUJD",  # valid base64, far too short
        "A" * 343 + "=",  # right length, wrong value
        "ÿÿÿÿ",  # non-ASCII text
        None,
        12345,
    ],
)
def test_malformed_signatures_are_false_not_errors(signature: object) -> None:
    assert verify_sha256_rsa(MESSAGE, signature, PUBLIC) is False  # type: ignore[arg-type]


def test_signature_from_another_key_is_false() -> None:
    assert not verify_sha256_rsa(MESSAGE, sign_sha256_rsa(MESSAGE, OTHER), PUBLIC)


@settings(max_examples=30, deadline=None)
@given(message=st.binary(max_size=300), position=st.integers(min_value=0), flip=st.integers(1, 255))
def test_any_changed_message_byte_fails_verification(
    message: bytes, position: int, flip: int
) -> None:
    signature = sign_sha256_rsa(message, KEY)
    assert verify_sha256_rsa(message, signature, PUBLIC)
    if message:
        changed = bytearray(message)
        changed[position % len(message)] ^= flip
        assert not verify_sha256_rsa(bytes(changed), signature, PUBLIC)


@settings(max_examples=30, deadline=None)
@given(position=st.integers(min_value=0, max_value=255), flip=st.integers(1, 255))
def test_any_changed_signature_byte_fails_verification(position: int, flip: int) -> None:
    raw = bytearray(base64.b64decode(sign_sha256_rsa(MESSAGE, KEY)))
    raw[position] ^= flip
    assert not verify_sha256_rsa(MESSAGE, base64.b64encode(bytes(raw)).decode(), PUBLIC)


# --- encryption ----------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(plaintext=TEXT)
def test_oaep_round_trips_any_text(plaintext: str) -> None:
    ciphertext = rsa_encrypt_oaep(plaintext, PUBLIC)
    assert ciphertext != rsa_encrypt_oaep(plaintext, PUBLIC)  # randomised padding
    assert rsa_decrypt_oaep(ciphertext, KEY) == plaintext


@settings(max_examples=30, deadline=None)
@given(plaintext=TEXT)
def test_pkcs1v15_round_trips_any_text(plaintext: str) -> None:
    assert rsa_decrypt_pkcs1v15(rsa_encrypt_pkcs1v15(plaintext, PUBLIC), KEY) == plaintext


def test_oaep_uses_sha1_and_mgf1_sha1() -> None:
    """Interoperates with a direct cryptography call using WeChat Pay's parameters."""
    sha1 = hashes.SHA1()  # noqa: S303 - WeChat Pay's mandated OAEP parameters
    oaep = padding.OAEP(mgf=padding.MGF1(sha1), algorithm=sha1, label=None)
    ours = base64.b64decode(rsa_encrypt_oaep("张三", PUBLIC))
    assert KEY.decrypt(ours, oaep).decode() == "张三"
    theirs = base64.b64encode(PUBLIC.encrypt("李四".encode(), oaep)).decode()
    assert rsa_decrypt_oaep(theirs, KEY) == "李四"


def test_encryption_accepts_certificate_pem_and_bytes() -> None:
    cert = self_signed(KEY)
    ciphertext = rsa_encrypt_oaep(b"13800138000", cert)
    assert rsa_decrypt_oaep(ciphertext, private_pem(KEY)) == "13800138000"
    assert rsa_decrypt_oaep(ciphertext.encode(), KEY) == "13800138000"


def test_oaep_limit_is_214_bytes_for_rsa_2048() -> None:
    assert rsa_decrypt_oaep(rsa_encrypt_oaep("x" * 214, PUBLIC), KEY) == "x" * 214
    with pytest.raises(
        InvalidArgumentError, match=r"plaintext is 215 bytes; .* at most 214"
    ) as info:
        rsa_encrypt_oaep("secret-" + "x" * 208, PUBLIC)
    assert "secret-" not in str(info.value)


def test_pkcs1v15_limit_is_245_bytes_for_rsa_2048() -> None:
    rsa_encrypt_pkcs1v15("x" * 245, PUBLIC)
    with pytest.raises(InvalidArgumentError, match="at most 245"):
        rsa_encrypt_pkcs1v15("x" * 246, PUBLIC)


def test_oaep_with_the_wrong_key_is_a_decryption_error() -> None:
    ciphertext = rsa_encrypt_oaep("身份证号 110101199003074477", PUBLIC)
    with pytest.raises(DecryptionError) as info:
        rsa_decrypt_oaep(ciphertext, OTHER)
    assert "110101" not in str(info.value)


@pytest.mark.parametrize("ciphertext", ["", "not base64!", "QUJD", "é"])
def test_malformed_ciphertext_is_a_decryption_error(ciphertext: str) -> None:
    with pytest.raises(DecryptionError):
        rsa_decrypt_oaep(ciphertext, KEY)
    with pytest.raises(DecryptionError):
        rsa_decrypt_pkcs1v15(ciphertext, KEY)


@settings(max_examples=20, deadline=None)
@given(position=st.integers(min_value=0, max_value=255), flip=st.integers(1, 255))
def test_tampered_oaep_ciphertext_is_a_decryption_error(position: int, flip: int) -> None:
    raw = bytearray(base64.b64decode(rsa_encrypt_oaep("hello", PUBLIC)))
    raw[position] ^= flip
    with pytest.raises(DecryptionError):
        rsa_decrypt_oaep(base64.b64encode(bytes(raw)).decode(), KEY)


def test_pkcs1v15_with_the_wrong_key_never_yields_the_plaintext() -> None:
    # OpenSSL's implicit rejection may hand back random bytes instead of failing.
    ciphertext = rsa_encrypt_pkcs1v15("hello", PUBLIC)
    try:
        result = rsa_decrypt_pkcs1v15(ciphertext, OTHER)
    except DecryptionError:
        return
    assert result != "hello"


def test_non_utf8_plaintext_is_a_decryption_error_without_the_bytes() -> None:
    ciphertext = rsa_encrypt_oaep(b"\xff\xfe\x00secret", PUBLIC)
    with pytest.raises(DecryptionError, match=r"not UTF-8|no UTF-8") as info:
        rsa_decrypt_oaep(ciphertext, KEY)
    assert "secret" not in str(info.value)
    assert "0xff" not in str(info.value)
