"""client.batch: bounded concurrency, retries, a crash-safe journal, exports and progress."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from _paths import BATCH_WORKER

from wechatpay_chain import (
    BatchCall,
    BatchSummary,
    Client,
    InvalidArgumentError,
    Journal,
    RateLimit,
    RetryPolicy,
)
from wechatpay_chain.testing import FakeRequest, FakeWechatPay, Reply

pytestmark = pytest.mark.anyio

TEMPLATE = "v3/marketing/favor/users/{openid}/coupons"
WORKER = BATCH_WORKER


def openids(count: int, prefix: str = "o-") -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(count)]


def coupon_sender(server: FakeWechatPay) -> Callable[[BatchCall[str]], Any]:
    async def send(call: BatchCall[str]) -> httpx.Response:
        return await call.client[TEMPLATE].post(
            openid=call.item,
            json={
                "stock_id": "9856000",
                "out_request_no": call.idempotency_key,
                "appid": "wxd678efh567hg6787",
                "stock_creator_mchid": server.merchant.mchid,
            },
        )

    return send


def coupons(server: FakeWechatPay) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = server.state.get("coupons", {})
    return found


def posts(server: FakeWechatPay) -> list[FakeRequest]:
    return [r for r in server.requests if r.method == "POST" and r.template == TEMPLATE]


async def test_every_item_is_sent_once_and_its_result_journaled(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    items = openids(120)
    summary = await wechatpay_client.batch(
        coupon_sender(wechatpay_server), items, journal=tmp_path / "j.sqlite", concurrency=16
    )
    assert isinstance(summary, BatchSummary)
    assert (summary.total, summary.sent, summary.succeeded, summary.failed) == (120, 120, 120, 0)
    assert summary.ok and summary.skipped == summary.resent == 0
    assert all(len(coupons(wechatpay_server)[o]) == 1 for o in items)
    rows = list(Journal(tmp_path / "j.sqlite").rows())
    assert [r.item_id for r in rows] == items  # in input order
    for row in rows:
        [sent] = coupons(wechatpay_server)[row.item_id]
        assert row.state == "done" and row.status == 200 and row.request_id
        assert row.result == {"coupon_id": sent["coupon_id"]}
    keys = {r.json["out_request_no"] for r in posts(wechatpay_server)}
    assert keys == {r.key for r in rows} and len(keys) == 120


async def test_a_rerun_skips_what_is_done(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    send, journal = coupon_sender(wechatpay_server), tmp_path / "j.sqlite"
    await wechatpay_client.batch(send, openids(50), journal=journal, concurrency=8)
    again = await wechatpay_client.batch(send, openids(60), journal=journal, concurrency=8)
    assert (again.total, again.skipped, again.sent, again.succeeded) == (60, 50, 10, 10)
    assert len(posts(wechatpay_server)) == 60
    assert Journal(journal).counts() == {"done": 60}


async def test_items_in_flight_at_a_crash_are_resent_with_their_key(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    """Handled by the server, answer never seen: the next run resends, the server dedups."""
    items, stalled = openids(40), {"o-0005", "o-0017", "o-0031"}
    seed = wechatpay_server._match("POST", "v3/marketing/favor/users/o/coupons")
    assert seed is not None
    send_coupon = seed[0].handler

    async def stall_some(request: FakeRequest) -> Any:
        answer = send_coupon(request)  # the coupon is sent now...
        if request.params["openid"] in stalled and not request.headers.get("X-Second"):
            await asyncio.sleep(8)  # ...and the answer never comes back in time
        return answer

    wechatpay_server.route("POST", TEMPLATE, stall_some)
    journal = tmp_path / "j.sqlite"
    with anyio.move_on_after(1.5):
        await wechatpay_client.batch(
            coupon_sender(wechatpay_server), items, journal=journal, concurrency=8
        )
    first_keys = {r.params["openid"]: r.json["out_request_no"] for r in posts(wechatpay_server)}
    assert stalled <= set(first_keys)
    states = {r.item_id: r.state for r in Journal(journal).rows()}
    assert {o for o, s in states.items() if s == "sending"} == stalled

    async def send_again(call: BatchCall[str]) -> httpx.Response:
        assert call.resent
        resp: httpx.Response = await call.client[TEMPLATE].post(
            openid=call.item,
            headers={"X-Second": "1"},
            json={
                "stock_id": "9856000",
                "out_request_no": call.idempotency_key,
                "appid": "wxd678efh567hg6787",
                "stock_creator_mchid": wechatpay_server.merchant.mchid,
            },
        )
        return resp

    again = await wechatpay_client.batch(send_again, items, journal=journal, concurrency=8)
    assert (again.resent, again.skipped, again.succeeded) == (3, 37, 3)
    resent = [r for r in posts(wechatpay_server) if r.headers.get("X-Second")]
    assert {r.params["openid"]: r.json["out_request_no"] for r in resent} == {
        o: first_keys[o] for o in stalled
    }
    assert all(len(coupons(wechatpay_server)[o]) == 1 for o in items)
    assert len(wechatpay_server.state["sent_by_request_no"]) == 40


async def test_failures_are_recorded_and_sent_again_by_the_next_run(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    refused = {"o-0003", "o-0007"}
    seed = wechatpay_server._match("POST", "v3/marketing/favor/users/o/coupons")
    assert seed is not None
    send_coupon = seed[0].handler

    def refuse_some(request: FakeRequest) -> Any:
        if request.params["openid"] in refused:
            return Reply(403, json={"code": "NOT_ENOUGH", "message": "批次预算不足"})
        return send_coupon(request)

    wechatpay_server.route("POST", TEMPLATE, refuse_some)
    send, journal = coupon_sender(wechatpay_server), tmp_path / "j.sqlite"
    summary = await wechatpay_client.batch(send, openids(10), journal=journal, concurrency=4)
    assert (summary.succeeded, summary.failed, summary.ok) == (8, 2, False)
    failures = summary.failures()
    assert {f.item_id for f in failures} == refused
    for failure in failures:
        assert failure.status == 403 and failure.request_id
        assert "NOT_ENOUGH" in (failure.error or "")
    keep = await wechatpay_client.batch(
        send, openids(10), journal=journal, concurrency=4, retry_failed=False
    )
    assert (keep.sent, keep.skipped) == (0, 10)
    refused.clear()  # the budget was topped up
    again = await wechatpay_client.batch(send, openids(10), journal=journal, concurrency=4)
    assert (again.sent, again.resent, again.succeeded, again.skipped) == (2, 2, 2, 8)
    first = {r.json["out_request_no"] for r in posts(wechatpay_server)[:10]}
    assert {r.json["out_request_no"] for r in posts(wechatpay_server)[10:]} <= first
    assert Journal(journal).counts() == {"done": 10}


async def test_a_bug_in_send_stops_the_batch_and_loses_nothing(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    good = coupon_sender(wechatpay_server)

    async def buggy(call: BatchCall[str]) -> Any:
        if call.item == "o-0030":
            raise KeyError("stock_id")
        return await good(call)

    journal = tmp_path / "j.sqlite"
    with pytest.raises(KeyError, match="stock_id"):
        await wechatpay_client.batch(buggy, openids(60), journal=journal, concurrency=4)
    summary = await wechatpay_client.batch(good, openids(60), journal=journal, concurrency=4)
    assert summary.succeeded + summary.skipped == 60
    assert all(len(coupons(wechatpay_server)[o]) == 1 for o in openids(60))


async def test_duplicate_items_are_sent_once(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    summary = await wechatpay_client.batch(
        coupon_sender(wechatpay_server), ["o-a", "o-b", "o-a", "o-b", "o-c"], journal=":memory:"
    )
    assert (summary.sent, summary.duplicates) == (3, 2)
    assert len(posts(wechatpay_server)) == 3
    assert summary.export(io.StringIO(), format="jsonl") == 3  # an in-memory journal stays open


async def test_custom_ids_keys_and_async_items(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    async def items() -> AsyncIterator[dict[str, Any]]:
        for n in range(5):
            await anyio.sleep(0)
            yield {"openid": f"o-{n}", "n": n}

    async def send(call: BatchCall[dict[str, Any]]) -> dict[str, str]:
        resp = await call.client[TEMPLATE].post(
            openid=call.item["openid"],
            json={
                "stock_id": "9856000",
                "out_request_no": call.idempotency_key,
                "appid": "wxd678efh567hg6787",
                "stock_creator_mchid": wechatpay_server.merchant.mchid,
            },
        )
        return {"coupon": resp.json()["coupon_id"]}

    summary = await wechatpay_client.batch(
        send,
        items(),
        journal=":memory:",
        item_id=lambda item: item["openid"],
        key=lambda item: f"{wechatpay_server.merchant.mchid}20260101{item['n']:04d}",
    )
    assert summary.succeeded == 5
    sent = sorted(r.json["out_request_no"] for r in posts(wechatpay_server))
    assert sent == [f"{wechatpay_server.merchant.mchid}20260101{n:04d}" for n in range(5)]
    rows = list(summary.journal.rows())
    assert rows[0].result == {"coupon": coupons(wechatpay_server)["o-0"][0]["coupon_id"]}
    summary.journal.close()


async def test_a_key_given_to_two_items_is_refused_before_sending(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    with pytest.raises(InvalidArgumentError, match="same idempotency key"):
        await wechatpay_client.batch(
            coupon_sender(wechatpay_server),
            openids(5),
            journal=":memory:",
            key=lambda item: "SAME-KEY",
        )
    assert posts(wechatpay_server) == []


async def test_batch_calls_get_the_retry_policy_and_rate_limit(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    wechatpay_server.misbehave("status_500", times=3)
    started = time.monotonic()
    summary = await wechatpay_client.batch(
        coupon_sender(wechatpay_server),
        openids(10),
        journal=":memory:",
        concurrency=10,
        retry=RetryPolicy(backoff=0.0),
        rate_limit=RateLimit({f"POST {TEMPLATE}": 40}),
    )
    assert (summary.succeeded, summary.failed) == (10, 0)
    assert len(posts(wechatpay_server)) == 13
    assert time.monotonic() - started >= 12 / 40 * 0.95
    assert "retry" not in wechatpay_client.middlewares.names  # the client is unchanged


async def test_results_export_as_csv_and_jsonl(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    summary = await wechatpay_client.batch(
        coupon_sender(wechatpay_server), openids(7), journal=tmp_path / "j.sqlite"
    )
    assert summary.export(tmp_path / "out.csv") == 7
    with open(tmp_path / "out.csv", encoding="utf-8", newline="") as file:
        table = list(csv.DictReader(file))
    assert [row["item_id"] for row in table] == openids(7)
    assert json.loads(table[0]["result"]) == {
        "coupon_id": coupons(wechatpay_server)["o-0000"][0]["coupon_id"]
    }
    assert {row["state"] for row in table} == {"done"}
    assert summary.export(tmp_path / "out.jsonl") == 7
    lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[6])["item_id"] == "o-0006"
    with pytest.raises(InvalidArgumentError, match="format"):
        summary.export(tmp_path / "out.txt")


async def test_a_journal_in_use_is_refused(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    with Journal(tmp_path / "j.sqlite"):
        with pytest.raises(InvalidArgumentError, match="in use by another batch"):
            await wechatpay_client.batch(
                coupon_sender(wechatpay_server), openids(3), journal=tmp_path / "j.sqlite"
            )
    assert posts(wechatpay_server) == []
    (tmp_path / "other.sqlite").write_bytes(b"not a database at all, not even close" * 100)
    with pytest.raises(InvalidArgumentError, match="cannot be used"):
        await wechatpay_client.batch(
            coupon_sender(wechatpay_server), openids(3), journal=tmp_path / "other.sqlite"
        )


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_progress_is_drawn_on_a_terminal_only(
    wechatpay_server: FakeWechatPay,
    wechatpay_client: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    send = coupon_sender(wechatpay_server)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    await wechatpay_client.batch(send, openids(5), journal=":memory:")
    assert "\r5/5 100% [" in terminal.getvalue() and "ok 5 failed 0" in terminal.getvalue()

    monkeypatch.setenv("CI", "true")  # a terminal in CI: no bar
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    await wechatpay_client.batch(send, openids(5, "ci-"), journal=":memory:")
    assert terminal.getvalue() == ""

    monkeypatch.delenv("CI")
    log = io.StringIO()  # a log file or pipe: no bar
    monkeypatch.setattr(sys, "stderr", log)
    await wechatpay_client.batch(send, openids(5, "log-"), journal=":memory:")
    assert log.getvalue() == ""

    chosen = io.StringIO()  # asked for explicitly: drawn wherever it is sent
    await wechatpay_client.batch(send, openids(5, "x-"), journal=":memory:", progress=chosen)
    assert "ok 5" in chosen.getvalue()


async def test_bad_batch_arguments_are_refused(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    send = coupon_sender(wechatpay_server)
    with pytest.raises(InvalidArgumentError, match="concurrency"):
        await wechatpay_client.batch(send, openids(1), journal=":memory:", concurrency=0)
    with pytest.raises(InvalidArgumentError, match="items must be an iterable"):
        await wechatpay_client.batch(send, "o-1", journal=":memory:")
    with pytest.raises(InvalidArgumentError, match="need item_id="):
        await wechatpay_client.batch(send, [object()], journal=":memory:")
    with pytest.raises(InvalidArgumentError, match="journal must be a path"):
        await wechatpay_client.batch(send, openids(1), journal=None)  # type: ignore[arg-type]
    assert posts(wechatpay_server) == []


def test_a_script_runs_a_batch_with_a_plain_send_function(
    wechatpay_server: FakeWechatPay, tmp_path: Path
) -> None:
    items = openids(40, prefix="sync-")
    threads: set[int] = set()

    def send(call: BatchCall[str]) -> httpx.Response:
        import threading

        threads.add(threading.get_ident())
        return call.client[TEMPLATE].post_sync(
            openid=call.item,
            json={
                "stock_id": "9856000",
                "out_request_no": call.idempotency_key,
                "appid": "wxd678efh567hg6787",
                "stock_creator_mchid": wechatpay_server.merchant.mchid,
            },
        )

    journal = tmp_path / "sync.sqlite"
    with wechatpay_server.client() as client:
        summary = client.batch.run_sync(send, items, journal=journal, concurrency=4)
        assert (summary.total, summary.succeeded, summary.failed) == (40, 40, 0)
        again = client.batch.run_sync(send, items, journal=journal, concurrency=4)
    assert again.sent == 0 and again.skipped == 40  # resumed from the journal: nothing resent
    assert all(len(coupons(wechatpay_server)[o]) == 1 for o in items)
    assert 1 < len(threads) <= 4  # worker threads, bounded by concurrency


def test_a_script_runs_a_batch_with_an_async_send_function(
    wechatpay_server: FakeWechatPay, tmp_path: Path
) -> None:
    items = openids(10, prefix="async-")
    with wechatpay_server.client() as client:
        summary = client.batch.run_sync(
            coupon_sender(wechatpay_server), items, journal=tmp_path / "a.sqlite"
        )
    assert (summary.total, summary.succeeded) == (10, 10)
    with wechatpay_server.client() as client, pytest.raises(InvalidArgumentError):
        client.batch.run_sync(lambda call: None, items, journal=":memory:", concurrency=0)
