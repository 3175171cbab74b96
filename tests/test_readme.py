"""Every ```python block of README.md runs against the fake server, and type-checks.

See ``_readme.py`` for the markers a block may carry. Blocks run in a temporary directory
(they write files such as ``coupons.sqlite``) over real loopback HTTP.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _readme import README, Block, compile_block, mypy_source, python_blocks, run_block

BLOCKS = python_blocks(README.read_text(encoding="utf-8"))
RUNNABLE = [b for b in BLOCKS if b.marker not in ("skip", "mypy-errors")]
TYPED = [b for b in BLOCKS if b.marker != "skip"]


def test_readme_has_python_blocks_and_markers_are_known() -> None:
    assert len(BLOCKS) >= 15
    lines = README.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines[:-1], start=1):
        if line.strip().startswith("<!--") and "readme-test:" in line:  # right above its block
            assert lines[number].strip().startswith("```py"), f"README.md:{number}: no block"
    for block in BLOCKS:
        assert block.marker in (None, "skip", "setup", "mypy-errors"), block.id
        if block.marker == "skip":
            assert block.argument, f"{block.id}: a skipped block says why"


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_block_compiles(block: Block) -> None:
    # Skipped blocks too: no top-level await outside a fragment, no syntax error.
    compile_block(block)


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_block_runs_against_the_fake_server(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run_block(block)


@pytest.mark.slow  # mypy answers the same on every Python: the matrix runs this once
def test_blocks_pass_mypy_strict(tmp_path: Path) -> None:
    files: dict[str, Block] = {}
    for block in TYPED:  # skipped blocks name placeholders (a KMS, key files)
        name = f"readme_{block.line}.py"
        (tmp_path / name).write_text(mypy_source(block), encoding="utf-8")
        files[name] = block
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--cache-dir", str(tmp_path / ".mypy_cache"),
         "--config-file", str(README.parent / "pyproject.toml"), *sorted(files)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "MYPYPATH": str(README.parent)},  # the editable install's source
    )
    reported: dict[int, list[str]] = {}
    unexpected = []
    for line in result.stdout.splitlines():
        found = re.match(r"(readme_\d+\.py):(\d+): error: (.*)", line)
        if found is None:
            continue
        block = files[found.group(1)]
        number = _readme_line(block, int(found.group(2)))
        reported.setdefault(number, []).append(found.group(3))
        if number not in block.expected_errors():
            unexpected.append(f"README.md:{number}: {found.group(3)}")
    missing = [
        f"README.md:{number}: mypy did not say {message!r}: {reported.get(number, [])}"
        for block in TYPED
        for number, message in block.expected_errors().items()
        if not any(message in said for said in reported.get(number, []))
    ]
    assert "error:" in result.stdout or result.returncode == 0, result.stdout + result.stderr
    assert not unexpected and not missing, "\n".join(unexpected + missing)


def _readme_line(block: Block, line: int) -> int:
    """The README line of line ``line`` of the block's mypy source."""
    header = len(mypy_source(block).splitlines()) - len(block.code.splitlines())
    return block.line + line - header - 1
