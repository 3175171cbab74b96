"""JSON from the network, refused before parsing when it nests deeper than any answer does.

``json.loads`` on ``[[[[…`` runs into the interpreter's recursion limit; anything that runs
meanwhile (a finalizer the garbage collector calls at that depth) fails too, far from the
parse. WeChat Pay's answers, notifications and error bodies nest a few levels: a body nesting
deeper than ``MAX_DEPTH`` is refused as malformed without being parsed.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["MAX_DEPTH", "loads"]

MAX_DEPTH = 256

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(rb"[\[\]{}]")


def _too_deep(data: bytes) -> bool:
    depth = 0
    for bracket in _BRACKET.findall(_STRING.sub(b'""', data)):
        if bracket in (b"[", b"{"):
            depth += 1
            if depth > MAX_DEPTH:
                return True
        else:
            depth -= 1
    return False


def loads(data: bytes | str) -> Any:
    """``json.loads``, raising ``ValueError`` for a body nested deeper than ``MAX_DEPTH``."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    # Only a body with that many brackets can nest that deep: the scan is for those alone.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _too_deep(raw):
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels")
    return json.loads(data)
