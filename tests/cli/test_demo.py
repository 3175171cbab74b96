"""The README's demo command runs every seed call and exits 0."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_all_seed_calls_successfully() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wechatpay_chain", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("30 passed, 0 failed")
    for seed in (
        "POST v3/marketing/favor/users/{openid}/coupons",
        "GET  v3/marketing/favor/users/{openid}/coupons",
        "POST v3/multiuse/users/{openid}/coupons",
        "POST v2/mmpaymkttransfers/send_coupon",
        "POST v2/mmpaymkttransfers/query_coupon_stock",
    ):
        for form in ("attribute", "chain()", "item"):
            for mode in ("async", "sync"):
                assert any(
                    line.startswith(f"ok   {seed} [{form}, {mode}]") for line in lines
                ), (seed, form, mode)
