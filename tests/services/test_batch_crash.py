"""A batch in a real process, killed with SIGKILL half-way, then resumed.

Every item must end up sent exactly once according to the fake server's records. The size is
``WECHATPAY_CRASH_ITEMS`` items (default 10 000, about 25 s) at ``WECHATPAY_CRASH_CONCURRENCY``
(default 64), as the issue asks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from _paths import BATCH_WORKER

from wechatpay_chain import Journal
from wechatpay_chain.testing import FakeWechatPay
from wechatpay_chain.testing._fake import private_pem

TEMPLATE = "v3/marketing/favor/users/{openid}/coupons"
WORKER = BATCH_WORKER

CRASH_ITEMS = int(os.environ.get("WECHATPAY_CRASH_ITEMS", "10000"))
CRASH_CONCURRENCY = int(os.environ.get("WECHATPAY_CRASH_CONCURRENCY", "64"))


@pytest.mark.slow
def test_a_batch_killed_half_way_resumes_and_sends_every_item_exactly_once(
    wechatpay_server: FakeWechatPay, tmp_path: Path
) -> None:
    m = wechatpay_server.merchant
    config = {
        "base_url": wechatpay_server.base_url,
        "mchid": m.mchid,
        "serial": m.serial,
        "private_key": private_pem(m.private_key).decode(),
        "certs": {k: v.decode() for k, v in wechatpay_server.certs().items()},
        "journal": str(tmp_path / "journal.sqlite"),
        "items": CRASH_ITEMS,
        "concurrency": CRASH_CONCURRENCY,
    }
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    command = [sys.executable, str(WORKER), str(tmp_path / "config.json")]
    sent: dict[str, str] = wechatpay_server.state.setdefault("sent_by_request_no", {})

    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(sent) < CRASH_ITEMS // 2 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    first.send_signal(signal.SIGKILL)
    out, err = first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL, (out, err)
    assert err == b""  # no progress bar (nor anything else) without a terminal
    at_kill = len(sent)
    assert CRASH_ITEMS // 2 <= at_kill < CRASH_ITEMS

    second = subprocess.run(command, capture_output=True, timeout=300, check=False)
    assert second.returncode == 0, second.stderr.decode()[-2000:]
    assert second.stderr == b""
    summary = json.loads(second.stdout)
    assert summary["total"] == CRASH_ITEMS
    assert summary["failed"] == summary["unresolved"] == 0
    assert summary["skipped"] > 0 and summary["resent"] > 0
    assert summary["skipped"] + summary["sent"] == CRASH_ITEMS

    # The server's records: one coupon per openid, one per request number, none lost.
    wanted = {f"o-{i:05d}" for i in range(CRASH_ITEMS)}
    got = wechatpay_server.state["coupons"]
    assert set(got) == wanted
    assert all(len(c) == 1 for c in got.values())
    assert len(sent) == CRASH_ITEMS
    # Some items were handled by the server before the kill without their answer being
    # journaled: the second run sent them again with the same number, and was deduplicated.
    posts = [r for r in wechatpay_server.requests if r.template == TEMPLATE]
    numbers = Counter(r.json["out_request_no"] for r in posts)
    assert any(n > 1 for n in numbers.values())
    assert len(numbers) == CRASH_ITEMS
    assert Journal(config["journal"]).counts() == {"done": CRASH_ITEMS}
