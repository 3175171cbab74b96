"""The typed endpoint layer: generated from the committed schema, checked by mypy and
pyright on user code, and invisible at run time.

tests/typing/ok_calls.py must type-check clean; every line of tests/typing/bad_calls.py that
ends in ``# E: text`` must get an error (mypy's containing ``text``) and no other line may.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _paths import PROJECT as ROOT

from wechatpay_chain import Chain, Client
from wechatpay_chain.testing import FakeWechatPay

TYPING = ROOT / "tests" / "typing"
sys.path.insert(0, str(ROOT / "tools"))

from _render import attribute, render  # noqa: E402

SCHEMA = json.loads((ROOT / "tools" / "endpoints.json").read_text(encoding="utf-8"))
_EXPECT = re.compile(r"(?<!`)#\s*E:\s*(.+?)\s*$")


def expectations(path: Path) -> dict[int, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return {n: m.group(1) for n, line in enumerate(lines, 1) if (m := _EXPECT.search(line))}


# --- generation ---------------------------------------------------------------------------
def test_committed_stubs_are_what_the_generator_makes_from_the_schema() -> None:
    files = render(SCHEMA)
    out = ROOT / "wechatpay_chain" / "endpoints"
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*.pyi")}
    assert on_disk == set(files), "run: python tools/gen_endpoints.py render"
    stale = [rel for rel, text in files.items() if (out / rel).read_text("utf-8") != text]
    assert stale == [], f"run: python tools/gen_endpoints.py render ({stale[:5]})"


def test_typed_options_are_the_options_a_call_takes() -> None:
    from wechatpay_chain._options import OPTIONS

    base = (ROOT / "wechatpay_chain" / "endpoints" / "_base.pyi").read_text("utf-8")
    common = base.split("class V3Options", 1)[1].split("class ", 1)[0]
    typed = set(re.findall(r"^    (\w+): ", common, re.M))
    per_call = {"json", "xml", "query", "headers", "body", "security", "nonceless"}
    assert typed | per_call == OPTIONS


def test_schema_covers_v2_and_v3_with_methods_titles_and_links() -> None:
    endpoints = SCHEMA["endpoints"]
    pairs = {(e["method"], e["template"]) for e in endpoints}
    assert len(pairs) == len(endpoints) > 1100
    assert {e["template"].split("/")[0] for e in endpoints} == {"v2", "v3"}
    assert ("POST", "v3/pay/transactions/native") in pairs
    assert ("POST", "v2/pay/micropay") in pairs
    assert all(e["title"] for e in endpoints)
    assert sum(1 for e in endpoints if e["link"].startswith("https://")) > 1100


def test_generated_attribute_names_reach_every_documented_template_at_run_time() -> None:
    client = Client()
    for template in sorted({e["template"] for e in SCHEMA["endpoints"]}):
        node: object = client
        for segment in template.split("/"):
            name = attribute(segment)
            node = getattr(node, name) if name is not None else node[segment]
        assert isinstance(node, Chain)
        assert str(node) == template


# --- type checkers -----------------------------------------------------------------------
def _mypy_errors(tmp_path: Path, *files: Path) -> dict[tuple[str, int], list[str]]:
    from mypy import api

    config = tmp_path / "mypy.ini"
    # As for an installed package: the library's own modules are not reported on.
    config.write_text(
        f"[mypy]\nstrict = True\nmypy_path = {ROOT}\n"
        "[mypy-wechatpay_chain.*]\nignore_errors = True\n",
        encoding="utf-8",
    )
    out, err, _status = api.run(
        [
            "--config-file",
            str(config),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-error-summary",
            "--hide-error-context",
            *map(str, files),
        ]
    )
    assert "Traceback" not in err, err
    errors: dict[tuple[str, int], list[str]] = {}
    for line in out.splitlines():
        found = re.match(r"(.+?):(\d+): error: (.*)$", line)
        if found:
            key = (Path(found.group(1)).name, int(found.group(2)))
            errors.setdefault(key, []).append(found.group(3))
    return errors


@pytest.mark.slow
def test_mypy_strict_accepts_typed_calls_and_refuses_each_mistake(tmp_path: Path) -> None:
    ok, bad = TYPING / "ok_calls.py", TYPING / "bad_calls.py"
    errors = _mypy_errors(tmp_path, ok, bad)
    assert [k for k in errors if k[0] == "ok_calls.py"] == [], errors
    expected = expectations(bad)
    assert len(expected) >= 10
    for line, text in expected.items():
        got = errors.get(("bad_calls.py", line), [])
        assert any(text in message for message in got), (line, text, got)
    unexpected = {
        k: v for k, v in errors.items() if k[0] == "bad_calls.py" and k[1] not in expected
    }
    assert unexpected == {}


@pytest.mark.slow
def test_pyright_strict_accepts_typed_calls_and_refuses_each_mistake(tmp_path: Path) -> None:
    pyright = shutil.which("pyright", path=str(Path(sys.executable).parent)) or shutil.which(
        "pyright"
    )
    assert pyright is not None, "pyright is a dev dependency: pip install -e '.[dev]'"
    for name in ("ok_calls.py", "bad_calls.py"):
        shutil.copy(TYPING / name, tmp_path / name)
    (tmp_path / "pyrightconfig.json").write_text(
        json.dumps(
            {"extraPaths": [str(ROOT)], "typeCheckingMode": "strict", "pythonVersion": "3.10"}
        ),
        encoding="utf-8",
    )
    run = subprocess.run(
        [pyright, "--outputjson", "--pythonpath", sys.executable, "ok_calls.py", "bad_calls.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(run.stdout)
    lines: dict[str, set[int]] = {"ok_calls.py": set(), "bad_calls.py": set()}
    for diag in report["generalDiagnostics"]:
        if diag["severity"] == "error":
            lines[Path(diag["file"]).name].add(diag["range"]["start"]["line"] + 1)
    assert lines["ok_calls.py"] == set(), report["generalDiagnostics"]
    assert lines["bad_calls.py"] == set(expectations(TYPING / "bad_calls.py"))


# --- run time ----------------------------------------------------------------------------
def test_importing_the_package_loads_no_typing_module() -> None:
    code = (
        "import sys, wechatpay_chain as w\n"
        "c = w.Client(); c.v3.pay.transactions.native; c['v3/pay/transactions/native']\n"
        "print([m for m in sys.modules if m.startswith('wechatpay_chain.endpoints')],"
        " w.Client.__mro__ == (w.Client, object))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[] True"


@pytest.mark.anyio
async def test_typed_calls_send_the_same_requests(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    wechatpay_server.catch_all()
    client = wechatpay_client
    body = {
        "appid": "wxd678efh567hg6787",
        "mchid": "1900000001",
        "description": "满100减10",
        "out_trade_no": "T-1",
        "notify_url": "https://example.com/notify",
        "amount": {"total": 100, "currency": "CNY"},
    }
    native = client.v3.pay.transactions.native
    assert native is client.v3.pay.transactions.native  # the cached runtime node
    assert client["v3/pay/transactions/native"] == native == client.chain(str(native))
    resp = await native.post(json=body)
    assert resp.json()["echo"]["path"] == "/v3/pay/transactions/native"
    assert resp.json()["echo"]["json"] == body

    order = client.v3.pay.transactions.outTradeNo._out_trade_no_
    answer = order.get_sync(out_trade_no="T 1", query={"mchid": "1900000001"})
    echo = answer.json()["echo"]
    assert (echo["method"], echo["path"]) == ("GET", "/v3/pay/transactions/out-trade-no/T%201")
    assert echo["query"] == {"mchid": "1900000001"}

    # The escape hatches are plain chains.
    untyped = await client["v3/not/yet/documented"].deeper.post(json={"a": 1})
    assert untyped.json()["echo"]["path"] == "/v3/not/yet/documented/deeper"
    assert wechatpay_server.requests[-1].template == "v3/not/yet/documented/deeper"
