"""Batches under the lifecycle rules: an unanswered send is "unknown" (sent again), a stopped
run gives back what it never sent, and the journal and its exports are private files."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from wechatpay_chain import BatchCall, Client
from wechatpay_chain.testing import FakeWechatPay

pytestmark = pytest.mark.anyio

TEMPLATE = "v3/marketing/favor/users/{openid}/coupons"


def sender(server: FakeWechatPay, **options: Any) -> Any:
    async def send(call: BatchCall[str]) -> httpx.Response:
        return await call.client[TEMPLATE].post(
            openid=call.item,
            json={
                "stock_id": "9856000",
                "out_request_no": call.idempotency_key,
                "appid": "wxd678efh567hg6787",
                "stock_creator_mchid": server.merchant.mchid,
            },
            **options,
        )

    return send


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def test_a_send_without_an_answer_is_unknown_and_sent_again(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    journal = tmp_path / "run.sqlite"
    wechatpay_server.misbehave("slow", template=TEMPLATE, delay=1.0)
    first = await wechatpay_client.batch(
        sender(wechatpay_server, timeout=0.3), ["o-1"], journal=journal,
        retry=False, retry_failed=False,
    )
    assert first.failed == 1 and not first.ok
    (row,) = first.failures()
    assert row.state == "sending"  # WeChat Pay may have processed it: not "failed"
    assert row.error is not None and "Timeout" in row.error
    again = await wechatpay_client.batch(
        sender(wechatpay_server), ["o-1"], journal=journal, retry=False, retry_failed=False
    )
    assert (again.resent, again.succeeded, again.skipped) == (1, 1, 0)
    keys = [r.json["out_request_no"] for r in wechatpay_server.requests if r.method == "POST"]
    assert len(keys) == 2 and keys[0] == keys[1]  # the same idempotency key both times


async def test_a_stopped_run_gives_back_the_claims_it_never_sent(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    journal = tmp_path / "run.sqlite"
    real = sender(wechatpay_server)
    calls = 0

    async def buggy(call: BatchCall[str]) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 5:
            raise RuntimeError("a bug in the send function")
        return await real(call)

    items = [f"o-{i:04d}" for i in range(300)]
    with pytest.raises(RuntimeError, match="a bug"):
        await wechatpay_client.batch(buggy, items, journal=journal, concurrency=1)
    summary = await wechatpay_client.batch(real, items, journal=journal, concurrency=4)
    # Four were done, one was in the send function when it raised (it may have gone out);
    # the rest of the claimed chunk never left and is sent as new, not "resent".
    assert (summary.skipped, summary.resent, summary.sent) == (4, 1, 296)
    assert summary.ok


async def test_journal_and_exports_are_created_private(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    old = os.umask(0o022)
    try:
        journal = tmp_path / "run.sqlite"
        summary = await wechatpay_client.batch(sender(wechatpay_server), ["o-1"], journal=journal)
        assert mode(journal) == 0o600
        for name in ("out.csv", "out.jsonl"):
            assert summary.export(tmp_path / name) == 1
            assert mode(tmp_path / name) == 0o600
    finally:
        os.umask(old)
