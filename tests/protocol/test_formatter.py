"""Formatter: nonces that are uniform, timestamps, and the line-feed message shape."""

from __future__ import annotations

import os
import secrets
import string
from collections import Counter

import pytest

from wechatpay_chain import InvalidArgumentError
from wechatpay_chain.protocol.formatter import Formatter

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
# 61 degrees of freedom: the statistic exceeds 150 by chance about once in 10^9 runs, while
# the modulo bias of ``byte % 62`` on this sample size scores around 420.
CHI_SQUARE_LIMIT = 150.0


def chi_square(counts: Counter[str], total: int) -> float:
    expected = total / len(BASE62)
    return sum((counts.get(symbol, 0) - expected) ** 2 / expected for symbol in BASE62)


def test_nonce_is_32_base62_characters_by_default() -> None:
    nonce = Formatter.nonce()
    assert len(nonce) == 32
    assert set(nonce) <= set(BASE62)


@pytest.mark.parametrize("length", [1, 2, 16, 31, 32, 33, 64, 1000])
def test_nonce_has_the_asked_length(length: int) -> None:
    assert len(Formatter.nonce(length)) == length


def test_nonce_of_no_length_is_refused() -> None:
    with pytest.raises(InvalidArgumentError):
        Formatter.nonce(0)


def test_nonces_do_not_repeat() -> None:
    assert len({Formatter.nonce() for _ in range(1000)}) == 1000


def test_nonce_symbols_are_uniform() -> None:
    sample = "".join(Formatter.nonce() for _ in range(2000))
    assert set(sample) == set(BASE62)
    assert chi_square(Counter(sample), len(sample)) < CHI_SQUARE_LIMIT


def test_the_uniformity_check_catches_modulo_bias() -> None:
    """The naive ``byte % 62`` favours the first eight symbols; the check above must notice."""
    biased = "".join(BASE62[b % 62] for b in secrets.token_bytes(64000))
    assert chi_square(Counter(biased), len(biased)) > CHI_SQUARE_LIMIT


def test_nonce_rejects_bytes_that_would_bias_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # 248..255 must be dropped, not folded onto 0..7; 0..247 map to BASE62[b % 62].
    from wechatpay_chain.protocol import formatter as _formatter

    supplies = iter([bytes(range(244, 256)), bytes(range(256))])
    monkeypatch.setattr(_formatter._ENTROPY, "take", lambda n: next(supplies)[:n])
    nonce = Formatter.nonce(6)
    assert nonce == "".join(BASE62[b % 62] for b in (244, 245, 246, 247, 0, 1))


def test_timestamp_is_whole_unix_seconds() -> None:
    assert Formatter.timestamp(1554208460.987) == "1554208460"
    assert Formatter.timestamp(0) == "0"
    assert Formatter.timestamp().isdigit()


def test_joined_by_line_feed_ends_every_part_with_lf() -> None:
    assert Formatter.joined_by_line_feed("GET", "/v3/certificates", 1554208460, "nonce", "") == (
        "GET\n/v3/certificates\n1554208460\nnonce\n\n"
    )
    assert Formatter.joined_by_line_feed("a") == "a\n"
    assert Formatter.joined_by_line_feed() == ""


def test_ksort_orders_keys_bytewise() -> None:
    data = {"b": 1, "a_b": 2, "aB": 3, "A": 4, "a": 5, "中": 6, "z": 7}
    ordered = Formatter.ksort(data)
    assert list(ordered) == sorted(data, key=lambda k: k.encode())
    assert list(ordered) == ["A", "a", "aB", "a_b", "b", "z", "中"]
    assert ordered == data


def test_query_string_is_the_apiv2_sign_message() -> None:
    fields = {"mch_id": "1900000001", "sign": "X", "body": "测试", "e": "", "none": None, "n": 1}
    assert Formatter.query_string(fields) == "body=测试&mch_id=1900000001&n=1"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_a_forked_child_never_repeats_its_parents_nonces() -> None:
    from wechatpay_chain.protocol.formatter import _ENTROPY

    _ENTROPY.take(1)  # the parent now holds a buffer a child would inherit
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first bytes go to the parent, then it leaves at once
        try:
            os.write(write, _ENTROPY.take(64))
        finally:
            os._exit(0)
    os.close(write)
    child = b""
    while chunk := os.read(read, 64):
        child += chunk
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 64
    assert _ENTROPY.take(64) != child


def test_nonces_do_not_repeat_across_buffer_refills() -> None:
    nonces = {Formatter.nonce(32) for _ in range(5000)}  # ~40 refills of the 4 KiB buffer
    assert len(nonces) == 5000
