"""Differential fuzzing: the engine reads answers as h11 does, whichever parser it uses.

Random and mutated answers (tests/_parser_diff.py), split at random points, go to the
engine's connection (httptools and h11 parsers) and to a bare h11 connection; the verdicts
(status, version, headers, body, or a refusal) must be the same, except where the engine
refuses by design what h11 accepts (listed in _parser_diff.STRICTER and in the README).
bench/fuzz_engine.py runs the same comparison for as long as one likes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from _parser_diff import REFUSED, EngineSide, agree, answer, h11_verdict_and_traits, split
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def sides() -> Iterator[dict[str, EngineSide]]:
    made = {parser: EngineSide(parser) for parser in ("httptools", "h11")}
    yield made
    for side in made.values():
        side.close()


@settings(max_examples=400)
@given(rng=st.randoms(use_true_random=False), cuts=st.lists(st.integers(0, 300), max_size=6))
def test_the_engine_and_h11_give_the_same_verdict(
    sides: dict[str, EngineSide], rng: random.Random, cuts: list[int]
) -> None:
    method, data = answer(rng)
    chunks = split(data, cuts)
    reference, traits = h11_verdict_and_traits(method, chunks)
    for parser, side in sides.items():
        verdict, reused = side.verdict(method, chunks)
        assert agree(verdict, reference, traits, parser), (parser, data, chunks, verdict)
        if "trailing" in traits:
            assert not reused  # bytes after an answer: that connection is never used again


@settings(max_examples=150)
@given(rng=st.randoms(use_true_random=False), cuts=st.lists(st.integers(0, 300), max_size=8))
def test_where_an_answer_is_split_does_not_matter(
    sides: dict[str, EngineSide], rng: random.Random, cuts: list[int]
) -> None:
    method, data = answer(rng)
    for side in sides.values():
        whole, _ = side.verdict(method, [data])
        assert side.verdict(method, split(data, cuts))[0] == whole
        assert side.verdict(method, [data[i : i + 1] for i in range(len(data))])[0] == whole


@pytest.mark.parametrize(
    "data",
    [
        # a signed 404 then stray bytes: the 404 stands, untouched
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nnoHTTP/1.1 200 OK\r\n\r\n",
        # a trailer is no header
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n",
        # informational answers before the final one
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: x\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        # read until the end of the connection
        b"HTTP/1.0 200 OK\r\n\r\nuntil the end",
        # no body whatever the head says
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
    ],
)
def test_known_answers_agree_exactly(sides: dict[str, EngineSide], data: bytes) -> None:
    reference, _ = h11_verdict_and_traits(b"GET", [data])
    assert reference != REFUSED
    for side in sides.values():
        verdict, _ = side.verdict(b"GET", [data])
        assert verdict == reference


@pytest.mark.parametrize(
    ("data", "trait"),
    [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\nok\r\n0\r\n\r\n",
            "cl+te",
        ),
        (b"HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\nok", "version"),
        (
            b"HTTP/1.1 100 Go\r\nContent-Length: 2\r\n\r\nHTTP/1.1 200 OK\r\n"
            b"Content-Length: 2\r\n\r\nok",
            "1xx-framing",
        ),
    ],
)
def test_what_the_engine_refuses_by_design(
    sides: dict[str, EngineSide], data: bytes, trait: str
) -> None:
    reference, traits = h11_verdict_and_traits(b"GET", [data])
    assert reference[0] == "answer" and trait in traits  # h11 takes it
    for side in sides.values():
        assert side.verdict(b"GET", [data])[0] == REFUSED
