"""AES-256-GCM (APIv3) and AES-256-ECB (APIv2 req_info): vectors, round trips, tampering."""

from __future__ import annotations

import base64

import pytest
from _paths import FIXTURES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from wechatpay_chain import DecryptionError, InvalidArgumentError
from wechatpay_chain.crypto import (
    aes_ecb_decrypt,
    aes_ecb_encrypt,
    aes_gcm_decrypt,
    aes_gcm_decrypt_bytes,
    aes_gcm_encrypt,
    md5,
)

KEY = "0123456789abcdef0123456789abcdef"
NONCE = "0123456789abcdef"
FIXTURES = FIXTURES

keys = st.binary(min_size=32, max_size=32)
nonces = st.binary(min_size=12, max_size=12)
texts = st.text(max_size=200)


# --- known vectors -------------------------------------------------------------------------


def test_gcm_vector_empty_plaintext() -> None:
    assert aes_gcm_encrypt("", KEY, NONCE) == "GvpmmdtYwexXIPhySs9Tlg=="
    assert aes_gcm_decrypt("GvpmmdtYwexXIPhySs9Tlg==", KEY, NONCE) == ""


def test_gcm_vector_with_associated_data() -> None:
    assert aes_gcm_encrypt("hello", KEY, NONCE, "world") == "APoZlYpivU3HjbAiB4CvW1rAFr8J"
    assert aes_gcm_decrypt("APoZlYpivU3HjbAiB4CvW1rAFr8J", KEY, NONCE, "world") == "hello"
    raw = aes_gcm_decrypt_bytes(
        b"APoZlYpivU3HjbAiB4CvW1rAFr8J", KEY.encode(), NONCE.encode(), b"world"
    )
    assert raw == b"hello"


def test_ecb_vector() -> None:
    assert aes_ecb_encrypt("hello", KEY) == "pZwJZBLuy3mDACEQT4YTBw=="
    assert aes_ecb_decrypt("pZwJZBLuy3mDACEQT4YTBw==", KEY) == "hello"


def test_refund_req_info_round_trips_with_md5_of_the_apiv2_secret() -> None:
    secret = "exposed_your_key_here_have_risks"
    xml = (FIXTURES / "refund.notification.req_info.sample.xml").read_text(encoding="utf-8")
    req_info = aes_ecb_encrypt(xml, md5(secret))
    assert aes_ecb_decrypt(req_info, md5(secret)) == xml


# --- round trips ---------------------------------------------------------------------------


@settings(max_examples=100)
@given(plaintext=texts, key=keys, nonce=nonces, aad=st.binary(max_size=64))
def test_gcm_round_trips(plaintext: str, key: bytes, nonce: bytes, aad: bytes) -> None:
    sealed = aes_gcm_encrypt(plaintext, key, nonce, aad)
    assert len(base64.b64decode(sealed)) == len(plaintext.encode()) + 16
    assert aes_gcm_decrypt(sealed, key, nonce, aad) == plaintext


@settings(max_examples=100)
@given(plaintext=st.binary(max_size=200), key=keys, nonce=nonces)
def test_gcm_round_trips_bytes(plaintext: bytes, key: bytes, nonce: bytes) -> None:
    assert aes_gcm_decrypt_bytes(aes_gcm_encrypt(plaintext, key, nonce), key, nonce) == plaintext


@settings(max_examples=100)
@given(plaintext=texts, key=keys)
def test_ecb_round_trips(plaintext: str, key: bytes) -> None:
    sealed = base64.b64decode(aes_ecb_encrypt(plaintext, key))
    assert len(sealed) % 16 == 0 and len(sealed) > len(plaintext.encode())
    assert aes_ecb_decrypt(base64.b64encode(sealed).decode(), key) == plaintext


def test_missing_associated_data_is_empty() -> None:
    sealed = aes_gcm_encrypt("x", KEY, NONCE)
    assert aes_gcm_decrypt(sealed, KEY, NONCE, None) == "x"
    assert aes_gcm_encrypt("x", KEY, NONCE, None) == sealed


# --- tampering -----------------------------------------------------------------------------


@settings(max_examples=200)
@given(
    plaintext=st.binary(max_size=64),
    aad=st.binary(max_size=16),
    position=st.integers(min_value=0),
    flip=st.integers(1, 255),
)
def test_any_flipped_gcm_byte_is_detected(
    plaintext: bytes, aad: bytes, position: int, flip: int
) -> None:
    sealed = bytearray(base64.b64decode(aes_gcm_encrypt(plaintext, KEY, NONCE, aad)))
    sealed[position % len(sealed)] ^= flip
    with pytest.raises(DecryptionError):
        aes_gcm_decrypt_bytes(base64.b64encode(bytes(sealed)), KEY, NONCE, aad)


def test_wrong_associated_data_nonce_or_key_is_detected() -> None:
    sealed = aes_gcm_encrypt("hello", KEY, NONCE, "world")
    for key, nonce, aad in [
        (KEY, NONCE, "World"),
        (KEY, NONCE, ""),
        (KEY, "0123456789abcdeF", "world"),
        ("0123456789abcdef0123456789abcdeF", NONCE, "world"),
    ]:
        with pytest.raises(DecryptionError) as info:
            aes_gcm_decrypt(sealed, key, nonce, aad)
        assert "hello" not in str(info.value)


@pytest.mark.parametrize("sealed", ["", "AAAA", "not base64!", "GvpmmdtYwexXIPhySs9Tlg", "é"])
def test_malformed_gcm_ciphertext_is_a_decryption_error(sealed: str) -> None:
    with pytest.raises(DecryptionError):
        aes_gcm_decrypt(sealed, KEY, NONCE)


def test_gcm_plaintext_that_is_not_utf8_is_a_decryption_error() -> None:
    sealed = aes_gcm_encrypt(b"\xff\xfe", KEY, NONCE)
    assert aes_gcm_decrypt_bytes(sealed, KEY, NONCE) == b"\xff\xfe"
    with pytest.raises(DecryptionError, match="not UTF-8"):
        aes_gcm_decrypt(sealed, KEY, NONCE)


def test_bad_nonce_length_is_an_argument_on_encrypt_and_a_decryption_error_on_decrypt() -> None:
    with pytest.raises(InvalidArgumentError, match="nonce must be 8 to 128 bytes, got 0"):
        aes_gcm_encrypt("x", KEY, "")
    with pytest.raises(DecryptionError, match="nonce"):
        aes_gcm_decrypt("GvpmmdtYwexXIPhySs9Tlg==", KEY, "short")


@pytest.mark.parametrize(
    "bad",
    ["", "0123456789abcdef", KEY + "0", "密钥" * 6],
)
def test_key_of_wrong_size_is_refused_without_showing_it(bad: str) -> None:
    expected = f"must be 32 bytes, got {len(bad.encode())}"
    with pytest.raises(InvalidArgumentError) as encrypting:
        aes_gcm_encrypt("x", bad, NONCE)
    with pytest.raises(InvalidArgumentError) as decrypting:
        aes_gcm_decrypt("GvpmmdtYwexXIPhySs9Tlg==", bad, NONCE)
    with pytest.raises(InvalidArgumentError) as ecb:
        aes_ecb_encrypt("x", bad)
    assert str(encrypting.value) == str(decrypting.value) == f"apiv3_key {expected}"
    assert str(ecb.value) == f"key {expected}"


@pytest.mark.parametrize(
    "sealed",
    ["", "not base64!", "AAAA", base64.b64encode(b"\x00" * 17).decode()],
)
def test_malformed_ecb_ciphertext_is_a_decryption_error(sealed: str) -> None:
    with pytest.raises(DecryptionError):
        aes_ecb_decrypt(sealed, KEY)


def test_ecb_with_the_wrong_key_fails() -> None:
    sealed = aes_ecb_encrypt("hello world, this is req_info", KEY)
    with pytest.raises(DecryptionError) as info:
        aes_ecb_decrypt(sealed, md5("another secret"))
    assert "hello" not in str(info.value)


@settings(max_examples=50)
@given(plaintext=st.binary(min_size=1, max_size=40), pad=st.integers(17, 255))
def test_ecb_bad_padding_is_a_decryption_error(plaintext: bytes, pad: int) -> None:
    # A last byte above 16 can never be PKCS#7 padding.
    block = (plaintext + b"\x00" * 16)[:15] + bytes([pad])
    encryptor = Cipher(algorithms.AES(KEY.encode()), modes.ECB()).encryptor()  # noqa: S305
    sealed = base64.b64encode(encryptor.update(block) + encryptor.finalize()).decode()
    with pytest.raises(DecryptionError, match="bad padding"):
        aes_ecb_decrypt(sealed, KEY)
