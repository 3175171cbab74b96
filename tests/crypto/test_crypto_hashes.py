"""Hex digests, HMAC, constant-time comparison and streamed file digests."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from _paths import FIXTURES
from hypothesis import given
from hypothesis import strategies as st

from wechatpay_chain import InvalidArgumentError
from wechatpay_chain.crypto import (
    HASH_ALGORITHMS,
    equals,
    file_digest,
    hmac_sha256,
    md5,
    sha1,
    sha256,
    sm3,
)

LOGO = FIXTURES / "logo.png"
LOGO_SHA256 = "01c9b1153143ad6927290a6523a1e3c98291f58388d44e59c8d2d8a98a8d1050"


def test_md5_of_the_apiv2_key_suffix() -> None:
    assert md5("&key=exposed_your_key_here_have_risks") == "b3d43c8390f26e2030d4d17bd580fbc8"


def test_logo_sha256() -> None:
    assert sha256(LOGO.read_bytes()) == LOGO_SHA256
    assert file_digest(LOGO, "sha256") == LOGO_SHA256
    assert file_digest(str(LOGO), "SHA256") == LOGO_SHA256


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        (md5, "900150983cd24fb0d6963f7d28e17f72"),
        (sha1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
        (sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        # GB/T 32905-2016 example 1
        (sm3, "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"),
    ],
)
def test_standard_abc_vectors(function: object, expected: str) -> None:
    assert function("abc") == expected  # type: ignore[operator]
    assert function(b"abc") == expected  # type: ignore[operator]


def test_sm3_long_vector() -> None:
    # GB/T 32905-2016 example 2: "abcd" repeated 16 times.
    assert sm3("abcd" * 16) == "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"


def test_hmac_sha256_rfc4231_case_2() -> None:
    assert hmac_sha256("Jefe", "what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_text_is_hashed_as_utf8() -> None:
    assert sha256("微信支付") == hashlib.sha256("微信支付".encode()).hexdigest()


def test_equals_compares_str_and_bytes() -> None:
    assert equals("ABC", b"ABC")
    assert not equals("ABC", "ABD")
    assert not equals("ABC", "ABCD")
    assert equals("签名", "签名".encode())


@pytest.mark.parametrize("algorithm", HASH_ALGORITHMS)
@given(data=st.binary(max_size=200_000))
def test_file_digest_equals_the_one_shot_digest(algorithm: str, data: bytes) -> None:
    one_shot = {"md5": md5, "sha1": sha1, "sha256": sha256, "sm3": sm3}[algorithm]
    assert file_digest(io.BytesIO(data), algorithm) == one_shot(data)


def test_file_digest_reads_a_file_object_from_its_position_and_leaves_it_open() -> None:
    stream = io.BytesIO(b"skip" + b"abc")
    stream.seek(4)
    assert file_digest(stream, "md5") == md5("abc")
    assert not stream.closed


def test_file_digest_streams_a_large_file(tmp_path: Path) -> None:
    path = tmp_path / "bill.csv"
    data = bytes(range(256)) * 5000  # 1.28 MB, many chunks
    path.write_bytes(data)
    assert file_digest(path, "sha1") == hashlib.sha1(data).hexdigest()


def test_unknown_algorithm_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="'sha512' is not supported"):
        file_digest(io.BytesIO(b""), "sha512")
