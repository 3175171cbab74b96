"""Several worker processes on one PostgreSQL batch; one killed with SIGKILL, one joining late.

Real processes, a real PostgreSQL server (tests/_servers.py) and the fake WeChat Pay server.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from _paths import TESTS

from wechatpay_chain.stores import PostgresJournal
from wechatpay_chain.testing import FakeWechatPay
from wechatpay_chain.testing._fake import private_pem

TEMPLATE = "v3/marketing/favor/users/{openid}/coupons"
WORKER = TESTS / "_shared_batch_worker.py"
ITEMS = int(os.environ.get("WECHATPAY_SHARED_ITEMS", "20000"))


def _config(server: FakeWechatPay, dsn: str, batch: str, **extra: Any) -> dict[str, Any]:
    m = server.merchant
    return {
        "base_url": server.base_url,
        "mchid": m.mchid,
        "serial": m.serial,
        "private_key": private_pem(m.private_key).decode(),
        "certs": {k: v.decode() for k, v in server.certs().items()},
        "dsn": dsn,
        "batch": batch,
        "lease": 2.0,
        "items": ITEMS,
        "concurrency": 32,
        **extra,
    }


def _start(tmp_path: Path, name: str, config: dict[str, Any]) -> subprocess.Popen[bytes]:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


@pytest.mark.slow
def test_four_workers_one_killed_and_one_late_send_every_item_once_under_one_key(
    wechatpay_server: FakeWechatPay, postgres_dsn: str, tmp_path: Path
) -> None:
    batch = "workers-" + secrets.token_hex(4)
    sent: dict[str, str] = wechatpay_server.state.setdefault("sent_by_request_no", {})
    workers = {
        name: _start(tmp_path, name, _config(wechatpay_server, postgres_dsn, batch))
        for name in ("a", "b", "c")
    }
    deadline = time.monotonic() + 240
    while len(sent) < ITEMS // 4 and time.monotonic() < deadline:
        assert all(p.poll() is None for p in workers.values()), "a worker ended early"
        time.sleep(0.01)
    workers["a"].send_signal(signal.SIGKILL)
    out, err = workers["a"].communicate(timeout=30)
    assert workers["a"].returncode == -signal.SIGKILL, err.decode()[-2000:]
    at_kill = len(sent)
    assert at_kill < ITEMS
    # A fourth worker joins the running batch with no input of its own.
    workers["d"] = _start(
        tmp_path, "d", _config(wechatpay_server, postgres_dsn, batch, items=0, backend="trio")
    )
    summaries = {}
    for name in ("b", "c", "d"):
        out, err = workers[name].communicate(timeout=max(1, deadline - time.monotonic()))
        assert workers[name].returncode == 0, err.decode()[-3000:]
        summaries[name] = json.loads(out)

    # Every survivor reports the whole batch done; the late worker did part of it.
    for summary in summaries.values():
        assert summary["batch"] == {"done": ITEMS} and summary["unresolved"] == 0
        assert summary["failed"] == 0
    assert summaries["d"]["sent"] > 0 and summaries["d"]["total"] == 0
    # The killed worker's claimed items were taken over and sent again with their key.
    assert sum(s["resent"] for s in summaries.values()) > 0

    # The server's view: one coupon per openid, each openid under exactly one request number.
    coupons = wechatpay_server.state["coupons"]
    assert set(coupons) == {f"o-{i:05d}" for i in range(ITEMS)}
    assert all(len(c) == 1 for c in coupons.values())
    keys_seen: dict[str, set[str]] = defaultdict(set)
    for request in wechatpay_server.requests:
        if request.template == TEMPLATE:
            keys_seen[request.params["openid"]].add(request.json["out_request_no"])
    assert len(keys_seen) == ITEMS
    assert all(len(keys) == 1 for keys in keys_seen.values())

    journal = PostgresJournal(postgres_dsn, batch=batch)
    rows = list(journal.rows())
    assert len(rows) == ITEMS and all(r.state == "done" for r in rows)
    assert all(keys_seen[r.item_id] == {r.key} for r in rows)
    assert any(r.sends > 1 for r in rows)  # taken over from the killed worker
    journal.close()
