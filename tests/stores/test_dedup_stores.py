"""De-duplication stores on real PostgreSQL and Redis servers: ownership, expiry, takeover.

In one process here (asyncio and trio); four aiohttp worker processes sharing a store are in
test_stores_notify_workers.py.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from wechatpay_chain import InvalidArgumentError
from wechatpay_chain.notifications import Deduplicator
from wechatpay_chain.stores import PostgresDeduplicator, RedisDeduplicator

pytestmark = pytest.mark.anyio


def new_key() -> str:
    return "v3:EV-" + secrets.token_hex(8)


MakeStore = Callable[..., Deduplicator]


@pytest.fixture(params=["postgres", "redis"])
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[MakeStore]:
    kind = request.param
    url = request.getfixturevalue("postgres_dsn" if kind == "postgres" else "redis_url")
    made: list[Deduplicator] = []

    def make(**ttls: Any) -> Deduplicator:
        store: Deduplicator
        if kind == "postgres":
            store = PostgresDeduplicator(url, table="test_notifications", **ttls)
        else:
            store = RedisDeduplicator(url, prefix="test:notification:", **ttls)
        made.append(store)
        return store

    yield make
    for store in made:
        if isinstance(store, PostgresDeduplicator):
            store.close()
        elif isinstance(store, RedisDeduplicator):
            await store.aclose()


async def test_one_claim_owns_a_notification_until_it_is_finished(make_store: MakeStore) -> None:
    first, other = make_store(), make_store()  # two workers' stores
    key = new_key()
    assert await first.claim(key) == "new"
    assert await other.claim(key) == "in_progress"
    await first.finish(key, handled=True)
    assert await other.claim(key) == "done"
    assert await first.claim(key) == "done"


async def test_a_failed_handler_lets_the_resend_run_again(make_store: MakeStore) -> None:
    first, other = make_store(), make_store()
    key = new_key()
    assert await first.claim(key) == "new"
    await first.finish(key, handled=False)
    assert await other.claim(key) == "new"


async def test_many_workers_claiming_at_once_give_exactly_one_owner(make_store: MakeStore) -> None:
    stores = [make_store() for _ in range(4)]
    key = new_key()
    answers: list[str] = []

    async def claim(store: Deduplicator) -> None:
        answers.append(await store.claim(key))

    async with anyio.create_task_group() as group:
        for i in range(24):
            group.start_soon(claim, stores[i % 4])
    assert sorted(answers) == ["in_progress"] * 23 + ["new"]


async def test_a_claim_never_finished_lapses_after_its_expiry(make_store: MakeStore) -> None:
    dead, alive = make_store(in_progress_ttl=0.4), make_store(in_progress_ttl=0.4)
    key = new_key()
    assert await dead.claim(key) == "new"  # a worker that then dies
    assert await alive.claim(key) == "in_progress"
    await anyio.sleep(0.6)
    assert await alive.claim(key) == "new"
    # The dead worker's late "failed" does not release the new owner's claim.
    await dead.finish(key, handled=False)
    assert await make_store().claim(key) == "in_progress"
    await alive.finish(key, handled=True)
    assert await dead.claim(key) == "done"


async def test_done_is_remembered_until_its_expiry(make_store: MakeStore) -> None:
    store = make_store(done_ttl=0.5)
    key = new_key()
    assert await store.claim(key) == "new"
    await store.finish(key, handled=True)
    assert await store.claim(key) == "done"
    await anyio.sleep(0.7)
    assert await store.claim(key) == "new"


def test_bad_arguments_name_what_to_fix() -> None:
    with pytest.raises(InvalidArgumentError, match="in_progress_ttl"):
        RedisDeduplicator("redis://127.0.0.1:1/0", in_progress_ttl=0)
    with pytest.raises(InvalidArgumentError, match="redis://"):
        RedisDeduplicator("http://127.0.0.1:1/0")
    with pytest.raises(InvalidArgumentError, match="SQL identifier"):
        PostgresDeduplicator("postgresql://h/db", table="x; DROP TABLE y")
    with pytest.raises(InvalidArgumentError, match="done_ttl"):
        PostgresDeduplicator("postgresql://h/db", done_ttl=-1)
