"""Four aiohttp worker processes sharing a de-duplication store (Redis or PostgreSQL).

WeChat Pay re-sends a notification until it is acknowledged, and behind a load balancer each
copy may land on another worker. The fake WeChat Pay signs and sends real notifications.
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from _paths import TESTS
from _servers import free_port

from wechatpay_chain.testing import FakeWechatPay

WORKER = TESTS / "_notify_worker.py"
IN_PROGRESS_TTL = 1.5


def _pem(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, dict):
        return {k: _pem(v) for k, v in value.items()}
    return value


class Workers:
    def __init__(self, tmp_path: Path, fake: FakeWechatPay, store: dict[str, Any]) -> None:
        self.log = tmp_path / "handler.log"
        self.log.touch()
        self.fake = fake
        self.ports = [free_port() for _ in range(4)]
        options = {k: _pem(v) for k, v in fake.client_options().items()}
        self.processes: list[subprocess.Popen[bytes]] = []
        for i, port in enumerate(self.ports):
            config = {"options": options, "store": store, "port": port, "log": str(self.log)}
            path = tmp_path / f"worker{i}.json"
            path.write_text(json.dumps(config), encoding="utf-8")
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, str(WORKER), str(path)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            )
        deadline = time.monotonic() + 60
        for i, port in enumerate(self.ports):
            while True:
                assert self.processes[i].poll() is None, self.processes[i].stderr
                try:
                    httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, f"worker {i} did not start"
                    time.sleep(0.05)

    def send(self, worker: int, ident: str, resource: dict[str, Any], **options: Any) -> int:
        url = f"http://127.0.0.1:{self.ports[worker]}/notify"
        response = self.fake.send_notification_sync(
            url, "TRANSACTION.SUCCESS", resource, id=ident, **options
        )
        return response.status_code

    def events(self, ident: str) -> list[tuple[int, str]]:
        lines = self.log.read_text(encoding="utf-8").splitlines()
        found = [json.loads(line) for line in lines]
        return [(e["pid"], e["event"]) for e in found if e["id"] == ident]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture(params=["redis", "postgres"])
def workers(
    request: pytest.FixtureRequest, tmp_path: Path, wechatpay_server: FakeWechatPay
) -> Iterator[Workers]:
    kind = request.param
    tag = secrets.token_hex(4)
    if kind == "redis":
        url, where = request.getfixturevalue("redis_url"), {"prefix": f"test:{tag}:"}
    else:
        url, where = request.getfixturevalue("postgres_dsn"), {"table": f"notify_{tag}"}
    store: dict[str, Any] = {"kind": kind, "url": url, **where}
    store["in_progress_ttl"] = IN_PROGRESS_TTL
    running = Workers(tmp_path, wechatpay_server, store)
    try:
        yield running
    finally:
        running.stop()


def paid(**extra: Any) -> dict[str, Any]:
    return {"out_trade_no": "T" + secrets.token_hex(6), "trade_state": "SUCCESS", **extra}


@pytest.mark.slow
def test_a_notification_resent_to_every_worker_runs_the_handler_once(workers: Workers) -> None:
    ident, resource = "EV-" + secrets.token_hex(6), paid(slow=1.0)
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda w: workers.send(w, ident, resource), range(4)))
    # One worker ran it; the others were told to re-send later while it ran (or, had they
    # come after it finished, acknowledged without running it).
    assert statuses.count(200) >= 1 and 409 in statuses and set(statuses) <= {200, 409}
    for worker in range(4):  # the re-sends after it was handled: acknowledged, not run
        assert workers.send(worker, ident, resource) == 200
    assert [event for _, event in workers.events(ident)] == ["start", "end"]


@pytest.mark.slow
def test_a_failed_handler_lets_the_resend_run_again_on_another_worker(
    workers: Workers, tmp_path: Path
) -> None:
    ident = "EV-" + secrets.token_hex(6)
    resource = paid(fail_once=str(tmp_path / f"{ident}.failed"))
    assert workers.send(0, ident, resource) == 500
    assert workers.send(1, ident, resource) == 200
    assert workers.send(2, ident, resource) == 200
    events = workers.events(ident)
    assert [event for _, event in events] == ["start", "fail", "start", "end"]
    assert events[0][0] != events[2][0]  # two processes


@pytest.mark.slow
def test_a_worker_killed_in_the_handler_lets_the_resend_run_after_the_expiry(
    workers: Workers,
) -> None:
    ident, resource = "EV-" + secrets.token_hex(6), paid(hang=True)
    with ThreadPoolExecutor(1) as pool:
        hanging = pool.submit(workers.send, 2, ident, resource, timeout=30)
        deadline = time.monotonic() + 20
        while not workers.events(ident):
            assert time.monotonic() < deadline, "the handler never started"
            time.sleep(0.02)
        killed_at = time.monotonic()
        workers.processes[2].send_signal(signal.SIGKILL)
        with pytest.raises(httpx.TransportError):
            hanging.result(timeout=30)
    # The re-sends carry the same id (what de-duplication goes by); this copy does not hang.
    resend = dict(resource, hang=False)
    # Right after the kill the claim still holds: the re-send is asked to come back later.
    assert workers.send(3, ident, resend) == 409
    time.sleep(max(0.0, IN_PROGRESS_TTL + 0.3 - (time.monotonic() - killed_at)))
    assert workers.send(3, ident, resend) == 200
    assert [event for _, event in workers.events(ident)] == ["start", "start", "end"]
    assert workers.send(0, ident, resend) == 200  # and from then on it is done
    assert len(workers.events(ident)) == 3
