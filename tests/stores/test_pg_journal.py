"""The PostgreSQL batch journal, in one process: claims, leases, takeover, whole-batch reports.

A real PostgreSQL server (tests/_servers.py) and the fake WeChat Pay server; the multi-process
run with a killed worker is in test_stores_workers.py.
"""

from __future__ import annotations

import io
import json
import secrets
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from _servers import free_port

from wechatpay_chain import BatchCall, BatchSummary, Client, InvalidArgumentError
from wechatpay_chain.stores import PostgresJournal, StoreUnavailableError
from wechatpay_chain.testing import FakeRequest, FakeWechatPay, Reply

pytestmark = pytest.mark.anyio

TEMPLATE = "v3/marketing/favor/users/{openid}/coupons"


def batch_name() -> str:
    return "test-" + secrets.token_hex(6)


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


def posts(server: FakeWechatPay) -> list[FakeRequest]:
    return [r for r in server.requests if r.method == "POST" and r.template == TEMPLATE]


async def test_a_dsn_journal_sends_every_item_once_and_reports_the_whole_batch(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, postgres_dsn: str, tmp_path: Path
) -> None:
    name = batch_name()
    items = openids(300)
    drawn = io.StringIO()
    summary = await wechatpay_client.batch(
        coupon_sender(wechatpay_server),
        items,
        journal=f"{postgres_dsn}#{name}",
        concurrency=16,
        progress=drawn,
    )
    assert isinstance(summary, BatchSummary)
    # The progress line counts the whole batch (read from the journal).
    assert drawn.getvalue().rstrip().rsplit("\r", 1)[-1].startswith("300/300 100% ")
    assert (summary.total, summary.sent, summary.succeeded, summary.failed) == (300, 300, 300, 0)
    assert summary.batch == {"done": 300} and summary.ok and summary.unresolved == 0
    assert "whole batch: 300 done" in str(summary)
    sent = wechatpay_server.state["coupons"]
    assert all(len(sent[o]) == 1 for o in items)
    journal = PostgresJournal(postgres_dsn, batch=name)
    rows = list(journal.rows())
    assert [r.item_id for r in rows] == items  # in load order
    by_no = {r.json["out_request_no"]: r.params["openid"] for r in posts(wechatpay_server)}
    for row in rows:
        assert row.state == "done" and row.status == 200 and row.sends == 1
        assert by_no[row.key] == row.item_id
        assert row.result == {"coupon_id": sent[row.item_id][0]["coupon_id"]}
    out = io.StringIO()
    assert summary.export(out, format="jsonl") == 300
    assert json.loads(out.getvalue().splitlines()[0])["item_id"] == "o-0000"
    assert journal.export(tmp_path / "all.csv") == 300
    assert (tmp_path / "all.csv").read_text().count("\n") == 301
    assert (tmp_path / "all.csv").stat().st_mode & 0o777 == 0o600  # it holds every answer

    # Run again: everything is done already; nothing is sent.
    before = len(posts(wechatpay_server))
    again = await wechatpay_client.batch(
        coupon_sender(wechatpay_server), items, journal=journal, concurrency=8
    )
    assert (again.sent, again.skipped, again.batch) == (0, 300, {"done": 300})
    assert len(posts(wechatpay_server)) == before
    journal.close()


async def test_failures_are_reported_for_the_whole_batch_and_retried_by_a_later_run(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, postgres_dsn: str
) -> None:
    refuse = {"o-0003", "o-0007"}

    def flaky(request: FakeRequest) -> Any:
        if request.params["openid"] in refuse:
            return Reply(400, {"code": "PARAM_ERROR", "message": "no"})
        return Reply(200, {"coupon_id": "c-" + request.params["openid"]})

    wechatpay_server.route("POST", TEMPLATE, flaky)
    journal = PostgresJournal(postgres_dsn, batch=batch_name())
    summary = await wechatpay_client.batch(
        coupon_sender(wechatpay_server), openids(10), journal=journal
    )
    assert summary.batch == {"done": 8, "failed": 2} and not summary.ok
    failures = summary.failures()
    assert sorted(f.item_id for f in failures) == sorted(refuse)
    assert all(f.status == 400 and "PARAM_ERROR" in (f.error or "") for f in failures)
    keys = {f.item_id: f.key for f in failures}

    refuse.clear()
    second = await wechatpay_client.batch(
        coupon_sender(wechatpay_server), openids(10), journal=journal
    )
    assert (second.sent, second.resent, second.batch) == (2, 2, {"done": 10})
    resent = [r for r in posts(wechatpay_server) if r.params["openid"] in keys]
    assert {r.json["out_request_no"] for r in resent} == set(keys.values())  # same keys
    journal.close()


async def test_two_workers_share_one_batch_and_split_its_items(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, postgres_dsn: str
) -> None:
    name = batch_name()
    items = openids(400)
    summaries: list[BatchSummary] = []

    async def worker() -> None:
        journal = PostgresJournal(postgres_dsn, batch=name)
        summaries.append(
            await wechatpay_client.batch(
                coupon_sender(wechatpay_server), items, journal=journal, concurrency=8
            )
        )

    async with anyio.create_task_group() as group:
        group.start_soon(worker)
        group.start_soon(worker)
    assert sum(s.sent for s in summaries) == 400
    assert all(s.sent > 0 for s in summaries)  # both took part
    assert all(s.batch == {"done": 400} for s in summaries)
    numbers = Counter(r.json["out_request_no"] for r in posts(wechatpay_server))
    assert len(numbers) == 400 and set(numbers.values()) == {1}


async def test_items_held_by_a_dead_worker_are_taken_over_after_the_lease_with_their_key(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, postgres_dsn: str
) -> None:
    name = batch_name()
    items = openids(50)
    dead = PostgresJournal(postgres_dsn, batch=name, lease=1.0)
    # A worker loads the batch, claims 20 items, and dies without sending or renewing.
    run, started = dead.start_run("dead-worker")
    dead.load([(o, f"key-{o}", json.dumps(o)) for o in items])
    held = dead.claim(run, 20, True, started)
    assert len(held) == 20
    assert dead.counts() == {"pending": 30, "sending": 20}

    begun = time.monotonic()
    summary = await wechatpay_client.batch(
        coupon_sender(wechatpay_server),
        [],  # joins without input of its own
        journal=PostgresJournal(postgres_dsn, batch=name, lease=1.0),
        concurrency=4,
    )
    waited = time.monotonic() - begun
    assert summary.batch == {"done": 50} and summary.sent == 50 and summary.resent == 20
    assert waited >= 0.5  # it waited for the dead worker's lease to lapse
    sent = {r.params["openid"]: r.json["out_request_no"] for r in posts(wechatpay_server)}
    assert sent == {o: f"key-{o}" for o in items}  # the recorded keys, every one
    rows = {r.item_id: r for r in dead.rows()}
    assert {o for o, r in rows.items() if r.sends == 2} == {h[0] for h in held}
    # The dead worker's late answer is not recorded over the new holder's.
    dead.record(run, [("failed", 500, None, None, "late", time.time(), held[0][0])])
    assert dead.counts() == {"done": 50}
    dead.close()


async def test_a_key_function_giving_two_items_one_key_is_refused(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, postgres_dsn: str
) -> None:
    with pytest.raises(InvalidArgumentError, match="same idempotency key"):
        await wechatpay_client.batch(
            coupon_sender(wechatpay_server),
            openids(5),
            journal=PostgresJournal(postgres_dsn, batch=batch_name()),
            key=lambda item: "same",
        )
    assert posts(wechatpay_server) == []


async def test_items_that_are_not_json_are_refused_before_anything_is_sent(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, postgres_dsn: str
) -> None:
    with pytest.raises(InvalidArgumentError, match="not JSON-able"):
        await wechatpay_client.batch(
            coupon_sender(wechatpay_server),
            [object()],
            journal=PostgresJournal(postgres_dsn, batch=batch_name()),
            item_id=lambda item: "x",
        )
    assert posts(wechatpay_server) == []


def test_a_journal_on_an_unreachable_server_says_so_without_its_password() -> None:
    journal = PostgresJournal(
        f"postgresql://u:s3cret@127.0.0.1:{free_port()}/db?connect_timeout=1", timeout=1.5
    )
    assert "s3cret" not in repr(journal)
    begun = time.monotonic()
    with pytest.raises(StoreUnavailableError, match=r"unreachable within 1\.5 s") as caught:
        journal.open()
    assert time.monotonic() - begun < 10
    assert "s3cret" not in str(caught.value)
    journal.close()


def test_bad_arguments_name_what_to_fix() -> None:
    with pytest.raises(InvalidArgumentError, match="DSN or a psycopg_pool"):
        PostgresJournal("sqlite:///x")
    with pytest.raises(InvalidArgumentError, match="lease"):
        PostgresJournal("postgresql://h/db", lease=0)


async def test_a_worker_stopped_by_a_bug_hands_its_items_back_at_once(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, postgres_dsn: str
) -> None:
    name = batch_name()
    send_coupon = coupon_sender(wechatpay_server)
    calls = 0

    async def buggy(call: BatchCall[str]) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 30:
            raise RuntimeError("a bug in send")
        return await send_coupon(call)

    journal = PostgresJournal(postgres_dsn, batch=name, lease=600)
    with pytest.raises(RuntimeError, match="a bug in send"):
        await wechatpay_client.batch(buggy, openids(200), journal=journal, concurrency=4)
    counts = journal.counts()
    assert "sending" not in counts and counts.get("pending", 0) > 0
    # Another worker finishes the batch now, not after the ten-minute lease.
    begun = time.monotonic()
    summary = await wechatpay_client.batch(
        coupon_sender(wechatpay_server), [], journal=journal, concurrency=4
    )
    assert time.monotonic() - begun < 30
    assert summary.batch == {"done": 200}
    numbers = Counter(r.params["openid"] for r in posts(wechatpay_server))
    assert set(numbers) == set(openids(200))
    journal.close()


async def test_a_send_without_an_answer_is_resent_by_the_next_worker_with_its_key(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, postgres_dsn: str
) -> None:
    send_coupon = coupon_sender(wechatpay_server)
    lost = {"o-0002", "o-0005"}

    async def flaky(call: BatchCall[str]) -> httpx.Response:
        response = await send_coupon(call)
        if call.item in lost:  # it reached WeChat Pay; the answer did not come back
            raise httpx.ReadTimeout("no answer")
        return response

    journal = PostgresJournal(postgres_dsn, batch=batch_name())
    with anyio.fail_after(60):  # the worker does not wait for items nobody holds
        first = await wechatpay_client.batch(flaky, openids(8), journal=journal)
    assert first.batch == {"done": 6, "sending": 2} and first.unresolved == 2 and not first.ok
    assert sorted(r.item_id for r in first.failures()) == sorted(lost)
    keys = {r.item_id: r.key for r in first.failures()}

    second = await wechatpay_client.batch(
        send_coupon,
        [],
        journal=journal,
        retry_failed=False,  # resent all the same
    )
    assert (second.sent, second.resent, second.batch) == (2, 2, {"done": 8})
    resent = [r for r in posts(wechatpay_server) if r.params["openid"] in lost]
    assert {r.json["out_request_no"] for r in resent} == set(keys.values())
    assert len(resent) == 4 and all(len(c) == 1 for c in wechatpay_server.state["coupons"].values())
    journal.close()
