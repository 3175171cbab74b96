"""The examples/ folder works: services served for real (uvicorn, aiohttp) and scripts run
as users run them (a subprocess with the settings in the environment), all against the fake
WeChat Pay server over loopback HTTP.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from _notify_servers import serve_aiohttp, serve_asgi
from _paths import PROJECT

from wechatpay_chain.testing import FakeRequest, FakeWechatPay
from wechatpay_chain.testing._core import private_pem

EXAMPLES = PROJECT / "examples"
APPID = "wxd678efh567hg6787"
BILL = (
    "交易时间,微信订单号,商户订单号,交易状态,应结订单金额\r\n"
    "`2024-01-31 10:00:00,`4200000001,`T1,`SUCCESS,`0.01\r\n"
    "`2024-01-31 11:00:00,`4200000002,`T2,`SUCCESS,`12.50\r\n"
    "总交易单数,应结订单总金额\r\n"
    "`2,`12.51\r\n"
).encode()


def load(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as the file it is (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def server() -> Iterator[FakeWechatPay]:
    with FakeWechatPay() as fake:
        yield fake


@pytest.fixture
def env(server: FakeWechatPay, tmp_path: Path) -> dict[str, str]:
    """The environment ``examples/settings.py`` reads, with key files written for the server."""
    key = tmp_path / "apiclient_key.pem"
    key.write_bytes(private_pem(server.merchant.private_key))
    public = tmp_path / "pub_key.pem"
    public.write_bytes(server.public_key_signer.public)
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(EXAMPLES), os.environ.get("PYTHONPATH", "")]),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        "WECHATPAY_MCHID": server.merchant.mchid,
        "WECHATPAY_SERIAL": server.merchant.serial,
        "WECHATPAY_PRIVATE_KEY": str(key),
        "WECHATPAY_PUBLIC_KEY_ID": server.public_key_signer.serial,
        "WECHATPAY_PUBLIC_KEY": str(public),
        "WECHATPAY_APIV3_KEY": server.merchant.apiv3_key,
        "WECHATPAY_SECRET": server.merchant.secret,
        "WECHATPAY_BASE_URL": server.base_url,
        "WECHATPAY_APPID": APPID,
    }


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


# --- the FastAPI service ---------------------------------------------------------------------
def test_fastapi_service_records_payments_and_refunds(server: FakeWechatPay) -> None:
    refunds: list[Any] = []

    def refund(request: FakeRequest) -> Any:
        refunds.append(request.json)
        return {"refund_id": "50000000382019052709732678859", "status": "PROCESSING",
                "out_refund_no": request.json["out_refund_no"]}

    server.route("POST", "v3/refund/domestic/refunds", refund)
    app = load("fastapi_service").create_app(server.client())  # as your own tests would
    with serve_asgi(app) as base, httpx.Client(base_url=base) as http:
        # Refusing to refund what was never paid: nothing reaches WeChat Pay.
        assert http.post("/orders/T1/refund", json={"amount": 1, "total": 1}).status_code == 409
        answer = server.send_notification_sync(
            f"{base}/wechatpay/notify", "TRANSACTION.SUCCESS",
            {"out_trade_no": "T1", "transaction_id": "4200000001"})
        assert answer.status_code == 200
        assert answer.json() == {"code": "SUCCESS", "message": "OK"}
        assert http.get("/orders/T1").json() == {"state": "paid", "transaction_id": "4200000001"}

        made = http.post("/orders/T1/refund", json={"amount": 1, "total": 1})
        assert made.status_code == 200, made.text
        assert made.json()["status"] == "PROCESSING"
        assert refunds[0]["out_trade_no"] == "T1"
        assert refunds[0]["amount"] == {"refund": 1, "total": 1, "currency": "CNY"}

        answer = server.send_notification_sync(
            f"{base}/wechatpay/notify", "REFUND.SUCCESS",
            {"out_trade_no": "T1", "refund_status": "SUCCESS"})
        assert answer.status_code == 200
        assert http.get("/orders/T1").json()["refund"] == "SUCCESS"

        # WeChat Pay says no: the caller learns why.
        server.fail("POST", "v3/refund/domestic/refunds", "NOT_ENOUGH", "余额不足", status=403)
        refused = http.post("/orders/T1/refund", json={"amount": 1, "total": 1})
        assert refused.status_code == 502
        assert "NOT_ENOUGH" in refused.json()["detail"]

        # A forged notification never reaches the handler.
        forged = server.send_notification_sync(
            f"{base}/wechatpay/notify", "TRANSACTION.SUCCESS", {"out_trade_no": "T9"},
            fault="tamper_body")
        assert forged.status_code == 401
        assert http.get("/orders/T9").status_code == 404


# --- the aiohttp service ---------------------------------------------------------------------
def test_aiohttp_service_creates_orders_and_takes_notifications(server: FakeWechatPay) -> None:
    server.route("POST", "v3/pay/transactions/native",
                 lambda request: {"code_url": f"weixin://wxpay/bizpayurl?pr={request.json['out_trade_no']}"})
    app = load("aiohttp_service").create_app(server.client(), APPID, "https://shop.example/notify")
    with serve_aiohttp(app) as base, httpx.Client(base_url=base) as http:
        made = http.post("/orders", json={"out_trade_no": "A1", "amount": 100,
                                          "description": "a mug"})
        assert made.json() == {"code_url": "weixin://wxpay/bizpayurl?pr=A1"}
        sent = server.requests[-1].json
        assert sent["mchid"] == server.merchant.mchid and sent["amount"]["total"] == 100
        assert http.get("/orders/A1").json() == {"state": "created"}

        answer = server.send_notification_sync(
            f"{base}/wechatpay/notify", "TRANSACTION.SUCCESS", {"out_trade_no": "A1"})
        assert answer.status_code == 200
        assert http.get("/orders/A1").json() == {"state": "paid"}

        v2 = server.send_v2_notification_sync(
            f"{base}/wechatpay/notify/v2", {"out_trade_no": "A2", "total_fee": 1})
        assert v2.status_code == 200 and b"SUCCESS" in v2.content
        assert http.get("/orders/A2").json() == {"state": "paid"}

        stale = server.send_notification_sync(
            f"{base}/wechatpay/notify", "TRANSACTION.SUCCESS", {"out_trade_no": "A3"},
            fault="stale_timestamp")
        assert stale.status_code == 401
        assert http.get("/orders/A3").status_code == 404

        server.fail("POST", "v3/pay/transactions/native", "ORDER_CLOSED", status=400)
        closed = http.post("/orders", json={"out_trade_no": "A4", "amount": 1,
                                            "description": "a cup"})
        assert closed.status_code == 502 and closed.json() == {"error": "ORDER_CLOSED"}


# --- the coupon batch script -----------------------------------------------------------------
def test_coupon_batch_survives_a_failure_and_a_rerun(
    server: FakeWechatPay, env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "openids.txt").write_text("\n".join(f"o-{i}" for i in range(20)) + "\n")
    template = "v3/marketing/favor/users/{openid}/coupons"
    server.fail("POST", template, "SYSTEM_ERROR", status=500, times=2)  # retried by the batch
    server.fail("POST", template, "NOT_ENOUGH", "批次预算不足", status=403)  # not retried
    args = [sys.executable, str(EXAMPLES / "coupon_batch.py"), "openids.txt",
            "--stock-id", "9856000", "--appid", APPID]

    first = run(args, env, tmp_path)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "20 items: 19 ok, 1 failed" in first.stdout
    assert "NOT_ENOUGH" in (tmp_path / "failures.csv").read_text()
    sent = len(server.requests)
    assert sent == 20 + 2  # every openid once, plus the two 500s retried

    second = run(args, env, tmp_path)  # same journal: only the failed openid again
    assert second.returncode == 0, second.stdout + second.stderr
    assert len(server.requests) == sent + 1
    keys = {r.json["out_request_no"] for r in server.requests if r.json}
    assert len(keys) == 20  # one idempotency key per openid, reused on every resend
    coupons = server.state["coupons"]
    assert sorted(coupons) == sorted(f"o-{i}" for i in range(20))
    assert all(len(c) == 1 for c in coupons.values())


# --- the bill reconciliation script ----------------------------------------------------------
def test_reconcile_bills_reports_differences(
    server: FakeWechatPay, env: dict[str, str], tmp_path: Path
) -> None:
    server.files.add_bill(BILL, bill_date="2024-01-31", bill_type="SUCCESS")
    script = [sys.executable, str(EXAMPLES / "reconcile_bills.py"), "2024-01-31", "orders.csv"]

    (tmp_path / "orders.csv").write_text("out_trade_no,amount\nT1,0.01\nT2,12.50\n")
    same = run(script, env, tmp_path)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "2 payments in the bill, 2 here, 0 differences" in same.stdout

    (tmp_path / "orders.csv").write_text("out_trade_no,amount\nT2,12.05\nT3,1.00\n")
    differ = run(script, env, tmp_path)
    assert differ.returncode == 1
    assert differ.stdout.splitlines()[:3] == [
        "T1: in the bill (0.01), unknown here",
        "T2: 12.05 here, 12.50 in the bill",
        "T3: paid 1.00 here, not in the bill",
    ]

    server.files.misbehave("wrong_hash")  # a bill that does not match its digest is refused
    broken = run(script, env, tmp_path)
    assert broken.returncode != 0
    assert "differences" not in broken.stdout
    assert not (tmp_path / "bill-2024-01-31.csv.part").exists()


# --- the CLI walkthrough ---------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_cli_walkthrough_runs(server: FakeWechatPay, env: dict[str, str], tmp_path: Path) -> None:
    headers, body = server.notification("TRANSACTION.SUCCESS", {"out_trade_no": "T1"})
    (tmp_path / "notification.headers").write_text(json.dumps(headers))
    (tmp_path / "notification.body").write_bytes(body)
    result = run(["bash", str(EXAMPLES / "cli_walkthrough.sh"), "o-7"], env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list((tmp_path / "certs").glob("wechatpay_*.pem"))
    assert '"coupon_id"' in result.stdout
    assert "HTTP/1.1 200 OK" in result.stdout and '"total_count": 1' in result.stdout
    assert "verified: id=" in result.stdout and "TRANSACTION.SUCCESS" in result.stdout
    assert result.stdout.rstrip().endswith("== done")
    posted = [r for r in server.requests if r.method == "POST"]
    assert posted[-1].json["out_request_no"] == "walkthrough-o-7"


# --- the examples are held to the project's standards ----------------------------------------
@pytest.mark.slow  # the same on every Python: the matrix runs it once
def test_examples_pass_ruff_and_mypy_strict(tmp_path: Path) -> None:
    ruff = run([sys.executable, "-m", "ruff", "check", str(EXAMPLES)], dict(os.environ), PROJECT)
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr
    mypy = run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--cache-dir", str(tmp_path), str(EXAMPLES)],
        {**os.environ, "MYPYPATH": str(PROJECT)},  # the editable install's source
        PROJECT,
    )
    assert mypy.returncode == 0, mypy.stdout + mypy.stderr
