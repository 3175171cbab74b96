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
RUNNABLE = [b for b in BLOCKS if b.marker != "skip"]


def test_readme_has_python_blocks_and_markers_are_known() -> None:
    assert len(BLOCKS) >= 15
    lines = README.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines[:-1], start=1):
        if line.strip().startswith("<!--") and "readme-test:" in line:  # right above its block
            assert lines[number].strip().startswith("```py"), f"README.md:{number}: no block"
    for block in BLOCKS:
        assert block.marker in (None, "skip", "setup"), block.id
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


def test_blocks_pass_mypy_strict(tmp_path: Path) -> None:
    files: dict[str, Block] = {}
    for block in RUNNABLE:  # skipped blocks name placeholders (a KMS, key files)
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
    errors = [
        _readme_line(line, files) for line in result.stdout.splitlines() if ": error:" in line
    ]
    assert result.returncode == 0 and not errors, "\n".join(errors) or result.stdout


def _readme_line(line: str, files: dict[str, Block]) -> str:
    """mypy's ``readme_N.py:L: error`` as ``README.md:line: error``."""
    found = re.match(r"(readme_\d+\.py):(\d+):(.*)", line)
    if found is None:
        return line
    block = files[found.group(1)]
    offset = int(found.group(2))
    if block.marker == "setup":
        source = mypy_source(block).splitlines()
        offset -= len(source) - len(block.code.splitlines())
    return f"README.md:{block.line + offset - 1}:{found.group(3)}"
