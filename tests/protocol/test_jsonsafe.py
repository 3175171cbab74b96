"""Hostile JSON is refused before it reaches the parser's recursion."""

from __future__ import annotations

import pytest

from wechatpay_chain.protocol import jsonsafe


def test_deep_nesting_is_refused_without_parsing() -> None:
    for body in (b"[" * 200_000, b'{"a":' * 300 + b"1" + b"}" * 300):
        with pytest.raises(ValueError, match="nested deeper"):
            jsonsafe.loads(body)


def test_brackets_inside_strings_do_not_count() -> None:
    text = '{"message":"' + "[" * 1000 + '\\"{"}'
    assert jsonsafe.loads(text) == {"message": "[" * 1000 + '"{'}


def test_wide_documents_and_moderate_nesting_parse() -> None:
    wide = b"[" + b",".join(b"[1]" for _ in range(5000)) + b"]"
    assert len(jsonsafe.loads(wide)) == 5000
    nested = b"[" * jsonsafe.MAX_DEPTH + b"]" * jsonsafe.MAX_DEPTH
    depth, value = 0, jsonsafe.loads(nested)
    while value:
        value, depth = value[0], depth + 1
    assert depth == jsonsafe.MAX_DEPTH - 1
    assert jsonsafe.loads(b'{"code":"NOT_FOUND"}') == {"code": "NOT_FOUND"}
