"""Build the sdist and the wheel, check what each carries, and run tests from the sdist.

    python .ci/check_dist.py [--tests "tests/cli/test_cli.py tests/services/test_bills.py"]

- ``python -m build`` makes both into a temporary folder; ``twine check`` reads their metadata.
- The sdist must hold the tests with ``conftest.py``, their helper modules and fixtures, and
  the LICENSE; the wheel must hold ``py.typed`` and the LICENSE and nothing but the package.
- The wheel is installed into a fresh virtual environment and the sdist's own tests run
  against it from the unpacked sdist, so a missing fixture or helper fails here, not for users.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Tests that read fixtures, use the helper modules, or run the command line and the demo.
DEFAULT_TESTS = (
    "tests/protocol/test_transformer.py tests/protocol/test_v2_protocol.py "
    "tests/services/test_bills.py tests/crypto/test_crypto_hashes.py "
    "tests/crypto/test_crypto_aes.py tests/crypto/test_crypto_keys.py "
    "tests/cli/test_cli.py tests/cli/test_demo.py"
)


def run(*command: str | Path, cwd: Path | None = None) -> None:
    print("+", " ".join(str(c) for c in command), flush=True)
    subprocess.run([str(c) for c in command], cwd=cwd, check=True)


def fail(message: str) -> None:
    sys.exit(f"check_dist: {message}")


def check_sdist(names: set[str], top: str) -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "tests"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    wanted = {f"{top}/{n}" for n in tracked.stdout.split()} if tracked.returncode == 0 else set()
    wanted |= {
        f"{top}/LICENSE",
        f"{top}/README.md",
        f"{top}/CHANGELOG.md",
        f"{top}/pyproject.toml",
        f"{top}/tests/conftest.py",
        f"{top}/wechatpay_chain/py.typed",
    }
    wanted |= {f"{top}/tests/{p.name}" for p in (ROOT / "tests").glob("_*.py")}
    wanted |= {f"{top}/tests/fixtures/{p.name}" for p in (ROOT / "tests" / "fixtures").iterdir()}
    missing = sorted(wanted - names)
    if missing:
        fail(f"the sdist lacks {missing}")
    if not any(n.startswith(f"{top}/tests/fixtures/") for n in names):
        fail("the sdist has no test fixtures")
    stray = sorted(n for n in names if "__pycache__" in n or n.endswith(".pyc"))
    if stray:
        fail(f"the sdist carries compiled files {stray[:5]}")


def check_wheel(names: set[str]) -> None:
    if "wechatpay_chain/py.typed" not in names:
        fail("the wheel lacks wechatpay_chain/py.typed")
    if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
        fail("the wheel lacks the LICENSE")
    foreign = sorted(
        n for n in names if not n.startswith("wechatpay_chain/") and ".dist-info/" not in n
    )
    if foreign:
        fail(f"the wheel carries more than the package: {foreign[:10]}")
    tests = sorted(n for n in names if "/tests/" in n or n.startswith("tests/"))
    if tests:
        fail(f"the wheel carries tests: {tests[:10]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", default=DEFAULT_TESTS, help="test files to run from the sdist")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wechatpay-dist-") as folder:
        work = Path(folder)
        out = work / "dist"
        run(sys.executable, "-m", "build", "--outdir", out, ROOT)
        (sdist,) = out.glob("*.tar.gz")
        (wheel,) = out.glob("*.whl")
        run(sys.executable, "-m", "twine", "check", "--strict", sdist, wheel)

        with tarfile.open(sdist) as archive:
            sdist_names = set(archive.getnames())
            top = sdist.name.removesuffix(".tar.gz")
            check_sdist(sdist_names, top)
            if hasattr(tarfile, "data_filter"):
                archive.extractall(work, filter="data")
            else:  # an old patch release without extraction filters: our own archive
                archive.extractall(work)  # noqa: S202
        with zipfile.ZipFile(wheel) as archive:
            check_wheel(set(archive.namelist()))
        print(f"contents ok: {sdist.name} ({len(sdist_names)} files), {wheel.name}", flush=True)

        # The tests of the unpacked sdist against the installed wheel. They run from outside the
        # unpacked folder, so that neither pytest nor the commands the tests start (``python -m
        # wechatpay_chain``) import the sdist's source instead of the wheel.
        env = work / "venv"
        venv.create(env, with_pip=True)
        python = env / "bin" / "python"
        run(python, "-m", "pip", "install", "-q", f"{wheel}[dev]")
        unpacked = work / top
        probe = "import wechatpay_chain, sys; print(wechatpay_chain.__file__)"
        where = subprocess.run(
            [str(python), "-c", probe], cwd=work, capture_output=True, text=True, check=True
        ).stdout.strip()
        if not where.startswith(str(env)):
            fail(f"the wheel is not what the tests import: {where}")
        tests = [unpacked / name for name in args.tests.split()]
        # Without -q: the run (the last of CI) ends on pytest's "N passed" line.
        run(env / "bin" / "pytest", "-p", "no:cacheprovider", *tests, cwd=work)


if __name__ == "__main__":
    main()
