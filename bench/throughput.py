"""Throughput of signed and verified APIv3 POSTs: wechatpay-chain against its baselines.

    .venv/bin/python bench/throughput.py              # medians of 3 runs, 3 s per scenario
    .venv/bin/python bench/throughput.py --quick      # smoke test (CI): tiny, well under 20 s
    .venv/bin/python bench/throughput.py --rows httpx,lean,chain --runs 5 --json out.json

The fake WeChat Pay server runs in its own process pinned to one core (``--server-cpu``);
every row runs in a fresh process pinned to the other core(s) (``--client-cpus``), so rows
do not share imports, pools or memory peaks. Each row runs two scenarios: one request at a
time (``seq``) and 64 in flight (``c64``; 64 threads for the sync rows), each on a fresh
client warmed up from cold (so c64 holds as many connections as the client keeps), for
``--duration`` seconds. Every answer is checked (status, signature, body); more than
``MAX_ERRORS`` failures fail the row. Reported per scenario: requests/s, client CPU per request
(``process_time`` of the row process / requests), peak RSS of the row process, the server's
CPU use (a server near 100 % is the bottleneck, not the client) and the ratio to the
baseline measured in the same run (``httpx`` for async rows, ``httpx-sync`` for sync rows).

Row ``php`` is the official PHP SDK (bench/php/throughput.php, one php process per scenario,
ratios against ``httpx``); it is skipped where ``php`` or the SDK (``WECHATPAY_PHP_SDK``,
default /opt/wechatpay-php/autoload.php) is not installed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = "/v3/pay/transactions/native"
PAYLOAD: dict[str, Any] = {
    "appid": "wxd678efh567hg6787",
    "mchid": "1900000001",
    "description": "Image形象店-深圳腾大-QQ公仔",
    "out_trade_no": "1217752501201407033233368018",
    "time_expire": "2018-06-08T10:34:56+08:00",
    "attach": "自定义数据说明",
    "notify_url": "https://www.weixin.qq.com/wxpay/pay.php",
    "goods_tag": "WXG",
    "amount": {"total": 100, "currency": "CNY"},
}
CODE_URL = "weixin://wxpay/bz?pr=NwY5Mz9&groupid=00"
CONCURRENCY = 64
MAX_ERRORS = 20  # a row with more failed requests than this is reported as failed
SCENARIOS = ("seq", "c64")
# The `php` row: the official PHP SDK (wechatpay/wechatpay) driven by bench/php/throughput.php.
# Its source is not part of this repository; bench/README.md ("PHP SDK row") says how to set it up.
PHP_SDK = os.environ.get("WECHATPAY_PHP_SDK", "/opt/wechatpay-php/autoload.php")
PHP_DRIVER = os.path.join(HERE, "php", "throughput.php")


# --- rows ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    name: str
    kind: str  # "async", "sync" or "external" (another language, its own process per scenario)
    loop: str  # "asyncio", "uvloop" or "trio"
    what: str
    needs: tuple[str, ...] = ()
    default: bool = True


ROWS = [
    Row(
        "httpx",
        "async",
        "asyncio",
        "bare httpx.AsyncClient() + hand-written sign/verify (baseline)",
    ),
    Row(
        "httpx-aiohttp",
        "async",
        "asyncio",
        "the same over httpx_aiohttp.AiohttpTransport",
        ("httpx_aiohttp",),
    ),
    Row("lean", "async", "asyncio", "asyncio Protocol + C parser + same crypto (floor)"),
    Row("lean-h11", "async", "asyncio", "the floor with h11 (pure Python) as the parser"),
    Row(
        "lean-offload",
        "async",
        "asyncio",
        "lean, signing in a 2-thread pool (pays only with a second client core)",
        default=False,
    ),
    Row("chain", "async", "asyncio", "wechatpay-chain, defaults: `Client(...)`, `await ...post()`"),
    Row(
        "chain-h11",
        "async",
        "asyncio",
        "wechatpay-chain defaults, the engine with h11 as the parser (httptools missing)",
    ),
    Row(
        "chain-full",
        "async",
        "asyncio",
        "wechatpay-chain over the engine through httpx's full AsyncClient.send path",
    ),
    Row(
        "chain-httpcore",
        "async",
        "asyncio",
        "wechatpay-chain on httpx's own transport (httpcore, 20 keep-alive): trio/proxy path",
    ),
    Row(
        "chain-ka20",
        "async",
        "asyncio",
        "wechatpay-chain with httpx's default keep-alive pool (20) instead of 128",
        default=False,
    ),
    Row("chain-trio", "async", "trio", "wechatpay-chain defaults under trio", ("trio",)),
    Row("chain-uvloop", "async", "uvloop", "wechatpay-chain defaults on uvloop", ("uvloop",)),
    Row(
        "chain-aiohttp",
        "async",
        "asyncio",
        "wechatpay-chain, transport=httpx_aiohttp.AiohttpTransport",
        ("httpx_aiohttp",),
    ),
    Row(
        "chain-aiohttp-uvloop",
        "async",
        "uvloop",
        "wechatpay-chain over aiohttp on uvloop",
        ("httpx_aiohttp", "uvloop"),
    ),
    Row(
        "chain-curl",
        "async",
        "asyncio",
        "wechatpay-chain, transport=httpx_curl_cffi.AsyncCurlTransport",
        ("httpx_curl_cffi",),
    ),
    Row(
        "chain-pyreqwest",
        "async",
        "asyncio",
        "wechatpay-chain, transport=pyreqwest HttpxTransport",
        ("pyreqwest",),
    ),
    Row(
        "chain-lean",
        "async",
        "asyncio",
        "PROTOTYPE: wechatpay-chain over bench/_leantransport.py (no TLS/timeouts)",
    ),
    Row(
        "chain-lean-uvloop",
        "async",
        "uvloop",
        "PROTOTYPE: chain-lean on uvloop",
        ("uvloop",),
    ),
    Row(
        "chain-lean-h11",
        "async",
        "asyncio",
        "PROTOTYPE: chain-lean with h11 instead of httptools",
    ),
    Row(
        "chain-offload",
        "async",
        "asyncio",
        "wechatpay-chain, with_signer() signing in a 2-thread pool",
        default=False,
    ),
    Row("httpx-sync", "sync", "-", "bare httpx.Client() from 1 / 64 threads (sync baseline)"),
    Row("chain-sync", "sync", "-", "wechatpay-chain post_sync() from 1 / 64 threads"),
    Row(
        "chain-sync-httpcore",
        "sync",
        "-",
        "wechatpay-chain post_sync() on httpx's own transport (httpcore)",
    ),
    Row(
        "chain-sync-aiohttp",
        "sync",
        "-",
        "wechatpay-chain post_sync(), transport=AiohttpTransport",
        ("httpx_aiohttp",),
    ),
    Row(
        "chain-sync-lean",
        "sync",
        "-",
        "PROTOTYPE: wechatpay-chain post_sync() over bench/_leantransport.py",
    ),
    Row(
        "chain-sync-tl",
        "sync",
        "-",
        "PROTOTYPE: the async verb on a per-thread event loop instead of the portal thread",
        default=False,
    ),
    Row(
        "php",
        "external",
        "-",
        "official PHP SDK (wechatpay/wechatpay, Guzzle 7 + curl): post() / 64 postAsync()",
    ),
]
BY_NAME = {row.name: row for row in ROWS}
QUICK_ROWS = ("httpx", "lean", "chain", "chain-trio", "httpx-sync", "chain-sync")


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def check_answer(status: int, body: bytes) -> None:
    if status != 200:
        raise RuntimeError(f"answer {status}: {body[:300]!r}")
    if json.loads(body).get("code_url") != CODE_URL:
        raise RuntimeError(f"unexpected answer body {body[:300]!r}")


class HandWritten:
    """What a developer writes around a bare HTTP client: sign the request, verify the answer."""

    def __init__(self, options: dict[str, Any]) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding

        self.mchid = options["mchid"]
        self.serial = options["serial"]
        self.key: Any = serialization.load_pem_private_key(
            options["private_key"].encode(), password=None
        )
        self.public: dict[str, Any] = {}
        for serial, pem in options["certs"].items():
            data = pem.encode()
            if b"CERTIFICATE" in data:
                self.public[serial] = x509.load_pem_x509_certificate(data).public_key()
            else:
                self.public[serial] = serialization.load_pem_public_key(data)
        self.pad = padding.PKCS1v15()
        self.sha256 = hashes.SHA256()

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.key.sign(message, self.pad, self.sha256)).decode()

    def message(self, method: str, target: str, body: bytes) -> tuple[str, str, bytes]:
        timestamp = str(int(time.time()))
        nonce = secrets.token_hex(16)
        return (
            timestamp,
            nonce,
            f"{method}\n{target}\n{timestamp}\n{nonce}\n".encode() + body + b"\n",
        )

    def header(self, timestamp: str, nonce: str, signature: str) -> str:
        return (
            f'WECHATPAY2-SHA256-RSA2048 mchid="{self.mchid}",nonce_str="{nonce}",'
            f'signature="{signature}",timestamp="{timestamp}",serial_no="{self.serial}"'
        )

    def authorization(self, method: str, target: str, body: bytes) -> str:
        timestamp, nonce, message = self.message(method, target, body)
        return self.header(timestamp, nonce, self.sign(message))

    def verify(
        self, timestamp: str | None, nonce: str | None, signature: str | None,
        serial: str | None, body: bytes,
    ) -> None:
        if not (timestamp and nonce and signature and serial):
            raise RuntimeError("answer is not signed")
        if abs(time.time() - int(timestamp)) > 300:
            raise RuntimeError("answer timestamp is stale")
        key = self.public[serial]
        message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
        key.verify(base64.b64decode(signature), message, self.pad, self.sha256)

    def verify_httpx(self, response: Any) -> None:
        h = response.headers
        self.verify(
            h.get("Wechatpay-Timestamp"),
            h.get("Wechatpay-Nonce"),
            h.get("Wechatpay-Signature"),
            h.get("Wechatpay-Serial"),
            response.content,
        )


Send = Callable[[], Awaitable[None]]


def chain_client(name: str, options: dict[str, Any]) -> Any:
    """A wechatpay-chain client with the transport the row's name asks for."""
    from wechatpay_chain import Client

    extra: dict[str, Any] = {}
    if name.endswith("-httpcore"):
        from wechatpay_chain.transport.factory import PoolFactory

        PoolFactory.use_engine = False
    elif name == "chain-h11":
        import wechatpay_chain.transport.engine

        wechatpay_chain.transport.engine.httptools = None  # as if it were not installed
    elif name == "chain-full":
        extra["follow_redirects"] = True  # a client option only AsyncClient.send implements
    elif name.endswith("-ka20"):
        import httpx

        extra["limits"] = httpx.Limits(
            max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0
        )
    elif "-aiohttp" in name:
        import httpx
        from httpx_aiohttp import AiohttpTransport

        extra["transport"] = AiohttpTransport(
            limits=httpx.Limits(max_connections=128, keepalive_expiry=5.0)
        )
    elif "-curl" in name:
        from httpx_curl_cffi import AsyncCurlTransport

        extra["transport"] = AsyncCurlTransport(max_connections=CONCURRENCY)
    elif "-lean" in name:
        from _lean import PARSER
        from _leantransport import LeanTransport

        extra["transport"] = LeanTransport("h11" if name.endswith("-h11") else PARSER)
    elif "-pyreqwest" in name:
        from pyreqwest.compatibility.httpx import HttpxTransport

        extra["transport"] = HttpxTransport()
    return Client(**options, **extra)


async def make_async_row(name: str, options: dict[str, Any]) -> tuple[Send, Callable[[], Any]]:
    """``send()`` doing one checked request, and an ``aclose()``."""
    base_url = options["base_url"]
    url = base_url.rstrip("/") + PATH
    if name in ("httpx", "httpx-aiohttp"):
        import httpx

        hand = HandWritten(options)
        if name == "httpx":
            http = httpx.AsyncClient()
        else:
            from httpx_aiohttp import AiohttpTransport

            http = httpx.AsyncClient(transport=AiohttpTransport())

        async def send_httpx() -> None:
            body = dumps(PAYLOAD)
            headers = {
                "Content-Type": "application/json",
                "Accept": "application/json",
                "Authorization": hand.authorization("POST", PATH, body),
            }
            response = await http.post(url, content=body, headers=headers)
            hand.verify_httpx(response)
            check_answer(response.status_code, response.content)

        return send_httpx, http.aclose

    if name.startswith("lean"):
        from urllib.parse import urlsplit

        from _lean import PARSER, LeanPool

        hand = HandWritten(options)
        parts = urlsplit(base_url)
        assert parts.hostname is not None and parts.port is not None
        pool = LeanPool(parts.hostname, parts.port, "h11" if name.endswith("-h11") else PARSER)
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/json\r\nAccept: application/json\r\n"
        )
        executor = None
        if name == "lean-offload":
            from concurrent.futures import ThreadPoolExecutor

            executor = ThreadPoolExecutor(2)
        loop = asyncio.get_running_loop()

        async def send_lean() -> None:
            body = dumps(PAYLOAD)
            timestamp, nonce, message = hand.message("POST", PATH, body)
            if executor is None:
                signature = hand.sign(message)
            else:
                signature = await loop.run_in_executor(executor, hand.sign, message)
            auth = hand.header(timestamp, nonce, signature)
            raw = (
                f"{head}Authorization: {auth}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            status, h, content = await pool.request(raw)

            def get(n: bytes) -> str | None:
                v = h.get(n)
                return v.decode() if v is not None else None

            hand.verify(
                get(b"wechatpay-timestamp"),
                get(b"wechatpay-nonce"),
                get(b"wechatpay-signature"),
                get(b"wechatpay-serial"),
                content,
            )
            check_answer(status, content)

        async def close_lean() -> None:
            pool.close()
            if executor is not None:
                executor.shutdown()

        return send_lean, close_lean

    client = chain_client(name, options)
    if name == "chain-offload":
        from concurrent.futures import ThreadPoolExecutor

        hand = HandWritten(options)
        executor = ThreadPoolExecutor(2)
        loop = asyncio.get_running_loop()

        def offloaded(message: bytes) -> Awaitable[str]:
            return loop.run_in_executor(executor, hand.sign, message)

        client = client.with_signer(offloaded)

    async def send_chain() -> None:
        response = await client.v3.pay.transactions.native.post(json=PAYLOAD)
        if response.json().get("code_url") != CODE_URL:
            raise RuntimeError(f"unexpected answer body {response.content[:300]!r}")

    return send_chain, client.aclose


def make_sync_row(
    name: str, options: dict[str, Any]
) -> tuple[Callable[[], None], Callable[[], Any]]:
    if name == "httpx-sync":
        import httpx

        hand = HandWritten(options)
        http = httpx.Client()
        url = options["base_url"].rstrip("/") + PATH

        def send_httpx() -> None:
            body = dumps(PAYLOAD)
            headers = {
                "Content-Type": "application/json",
                "Accept": "application/json",
                "Authorization": hand.authorization("POST", PATH, body),
            }
            response = http.post(url, content=body, headers=headers)
            hand.verify_httpx(response)
            check_answer(response.status_code, response.content)

        return send_httpx, http.close

    client = chain_client(name, options)
    if name == "chain-sync-tl":
        local = threading.local()
        loops: list[asyncio.AbstractEventLoop] = []

        def send_tl() -> None:
            loop = getattr(local, "loop", None)
            if loop is None:
                loop = local.loop = asyncio.new_event_loop()
                loops.append(loop)
            response = loop.run_until_complete(
                client.v3.pay.transactions.native.post(json=PAYLOAD)
            )
            if response.json().get("code_url") != CODE_URL:
                raise RuntimeError(f"unexpected answer body {response.content[:300]!r}")

        def close_tl() -> None:
            for loop in loops:
                loop.run_until_complete(client.aclose())
                loop.close()

        return send_tl, close_tl

    def send_chain() -> None:
        response = client.v3.pay.transactions.native.post_sync(json=PAYLOAD)
        if response.json().get("code_url") != CODE_URL:
            raise RuntimeError(f"unexpected answer body {response.content[:300]!r}")

    return send_chain, client.close


# --- measuring ----------------------------------------------------------------------------
def _server_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def _reset_peak_rss() -> None:
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _open_connections(port: int) -> int:
    """Established TCP connections to ``port`` on loopback (the row's, as rows run alone)."""
    wanted = f":{port:04X}"
    count = 0
    with contextlib.suppress(OSError), open("/proc/self/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[2].endswith(wanted) and fields[3] == "01":
                count += 1
    return count


class Meter:
    def __init__(self, server_pid: int, server_port: int = 0) -> None:
        self.server_pid = server_pid
        self.server_port = server_port

    def start(self) -> None:
        _reset_peak_rss()
        self.t0 = time.perf_counter()
        self.c0 = time.process_time()
        self.s0 = _server_cpu(self.server_pid)

    def stop(self, count: int) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.t0
        cpu = time.process_time() - self.c0
        server = _server_cpu(self.server_pid) - self.s0
        return {
            "n": count,
            "seconds": round(elapsed, 3),
            "rate": count / elapsed,
            "cpu_us": cpu / max(count, 1) * 1e6,
            "rss_mb": _peak_rss_mb(),
            "server_cpu": server / elapsed,
            "connections": _open_connections(self.server_port),
        }


async def drive_async(
    send: Send, concurrency: int, duration: float, warmup: int, meter: Meter
) -> dict[str, Any]:
    import anyio

    errors: list[BaseException] = []

    async def burst(total: int) -> int:
        done = 0
        deadline = time.perf_counter() + duration if total == 0 else float("inf")

        async def worker() -> None:
            nonlocal done
            while (done < total) if total else (time.perf_counter() < deadline):
                done += 1  # claimed before the await, so a counted burst stops on time
                try:
                    await send()
                except Exception as exc:
                    errors.append(exc)
                    done -= 1
                    if len(errors) >= MAX_ERRORS:
                        raise

        async with anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(worker)
        return done

    await burst(max(warmup, concurrency * 2))
    errors.clear()
    meter.start()
    count = await burst(0)
    return _result(meter.stop(count), errors)


def drive_threads(
    send: Callable[[], None], threads: int, duration: float, warmup: int, meter: Meter
) -> dict[str, Any]:
    """``threads`` threads calling ``send`` until the deadline; each warms up first, so
    per-thread state (connections, thread-local loops) is in place before timing starts."""
    counts = [0] * threads
    errors: list[BaseException] = []
    deadline = [0.0]

    def begin() -> None:
        meter.start()
        deadline[0] = time.perf_counter() + duration

    gate = threading.Barrier(threads, action=begin)

    def worker(i: int) -> None:
        try:
            for _ in range(max(1, warmup // threads)):
                send()
        except BaseException as exc:
            errors.append(exc)
        gate.wait()
        while time.perf_counter() < deadline[0] and len(errors) < MAX_ERRORS:
            try:
                send()
                counts[i] += 1
            except Exception as exc:
                errors.append(exc)

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return _result(meter.stop(sum(counts)), errors)


def _result(measured: dict[str, Any], errors: list[BaseException]) -> dict[str, Any]:
    """Errors are counted and the first one kept; too many fail the row."""
    measured["errors"] = len(errors)
    if errors:
        measured["first_error"] = f"{type(errors[0]).__name__}: {errors[0]}"[:200]
    if len(errors) >= MAX_ERRORS:
        raise RuntimeError(f"{len(errors)} failed requests, first: {measured['first_error']}")
    return measured


def run_row(config: dict[str, Any]) -> dict[str, Any]:
    """Inside a row process: both scenarios of one row."""
    name = config["row"]
    row = BY_NAME[name]
    if config.get("cpus"):
        os.sched_setaffinity(0, set(config["cpus"]))
    missing = [m for m in row.needs if not _importable(m)]
    if missing:
        return {"row": name, "skipped": f"{', '.join(missing)} not installed"}
    options = config["options"]
    meter = Meter(config["server_pid"], int(options["base_url"].rsplit(":", 1)[1].strip("/")))
    duration, warmup = config["duration"], config["warmup"]
    result: dict[str, Any] = {"row": name}
    # Each scenario gets a fresh client: its warm-up opens connections from cold, as a
    # service does when traffic arrives, so c64 runs on as many connections as it needs
    # (with a slow real server, one per request in flight) rather than on those left over.
    if row.kind == "sync":
        for scenario, threads in (("seq", 1), ("c64", CONCURRENCY)):
            send, close = make_sync_row(name, options)
            try:
                result[scenario] = drive_threads(send, threads, duration, warmup, meter)
            finally:
                close()
        return result

    async def main() -> None:
        for scenario, concurrency in (("seq", 1), ("c64", CONCURRENCY)):
            send, aclose = await make_async_row(name, options)
            try:
                result[scenario] = await drive_async(send, concurrency, duration, warmup, meter)
            finally:
                await aclose()

    import anyio

    if row.loop == "trio":
        anyio.run(main, backend="trio")
    elif row.loop == "uvloop":
        anyio.run(main, backend="asyncio", backend_options={"use_uvloop": True})
    else:
        anyio.run(main, backend="asyncio")
    return result


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


# --- the server process -------------------------------------------------------------------
def serve(engine: str, cpu: int | None) -> None:
    """Inside the server process: print the client options, serve until stdin closes."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    from fastserver import BenchmarkWechatPay

    from wechatpay_chain.testing._fake import private_pem

    # fast (default): the benchmark front on uvloop (when installed), the order answered on
    # the static path (signature checked, answer signed, nothing else); fast-routed: the same
    # front on asyncio through the fake server's routing (phase 1 and 2 tables); h11:
    # FakeWechatPay as the tests use it; -fresh / -reuse flip answer-signature reuse.
    front = "h11" if engine.startswith("h11") else "fast"
    reuse = engine in ("fast", "fast-routed", "h11-reuse")
    loop_factory = None
    if engine == "fast" and _importable("uvloop"):
        import uvloop

        loop_factory = uvloop.new_event_loop
    server = BenchmarkWechatPay(front=front, reuse_signatures=reuse, loop_factory=loop_factory)
    server.route("POST", PATH.lstrip("/"), lambda request: {"code_url": CODE_URL})
    if engine == "fast":
        server.static("POST", PATH, {"code_url": CODE_URL})
    server.start()
    m = server.merchant
    options = {
        "mchid": m.mchid,
        "serial": m.serial,
        "private_key": private_pem(m.private_key).decode(),
        "certs": {k: v.decode() for k, v in server.certs().items()},
        "base_url": server.base_url,
    }
    print(json.dumps({"pid": os.getpid(), "options": options}), flush=True)
    sys.stdin.read()
    server.stop()


class ServerProcess:
    def __init__(self, engine: str, cpu: int | None) -> None:
        command = [sys.executable, __file__, "_serve", "--engine", engine]
        if cpu is not None:
            command += ["--cpu", str(cpu)]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the benchmark server did not start")
        info = json.loads(line)
        self.pid: int = info["pid"]
        self.options: dict[str, Any] = info["options"]

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def php_missing() -> str | None:
    """Why the `php` row cannot run here (the message says "not installed", as skips do)."""
    if shutil.which("php") is None:
        return "php not installed"
    if not os.path.isfile(PHP_SDK):
        return f"PHP SDK not installed ({PHP_SDK}; set WECHATPAY_PHP_SDK)"
    return None


def php_versions() -> dict[str, str]:
    """PHP's version and, when the SDK is there, the PHP SDK's (for ``machine()``)."""
    if shutil.which("php") is None:
        return {}
    code = (
        "echo PHP_VERSION; if (is_file($argv[1])) { require $argv[1]; "
        "echo ' ', WeChatPay\\ClientDecoratorInterface::VERSION; }"
    )
    out: list[str] = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["php", "-r", code, "--", PHP_SDK], capture_output=True, text=True, timeout=20
        ).stdout.split()
    return dict(zip(("php", "wechatpay-php"), out, strict=False))


def spawn_php(config: dict[str, Any]) -> dict[str, Any]:
    """The `php` row: one fresh php process per scenario, pinned to the client CPUs."""
    name = config["row"]
    missing = php_missing()
    if missing:
        return {"row": name, "skipped": missing}
    cpus = set(config.get("cpus") or ())
    result: dict[str, Any] = {"row": name}
    for scenario, concurrency in (("seq", 1), ("c64", CONCURRENCY)):
        job = {
            "sdk": PHP_SDK,
            "scenario": scenario,
            "concurrency": concurrency,
            "duration": config["duration"],
            "warmup": config["warmup"],
            "server_pid": config["server_pid"],
            "options": config["options"],
            "payload": PAYLOAD,
            "code_url": CODE_URL,
        }
        proc = subprocess.run(
            ["php", PHP_DRIVER],
            input=json.dumps(job, ensure_ascii=False),
            capture_output=True,
            text=True,
            timeout=60 + 4 * config["duration"],
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        measured: dict[str, Any] = {}
        lines = proc.stdout.strip().splitlines()
        with contextlib.suppress(ValueError):
            measured = json.loads(lines[-1]) if lines else {}
        if proc.returncode != 0 or "error" in measured or "rate" not in measured:
            tail = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines()
                    or ["no output"])[-1]
            return {"row": name, "error": f"{scenario}: {measured.get('error') or tail}"[:300]}
        result[scenario] = measured
    return result


def spawn_row(config: dict[str, Any]) -> dict[str, Any]:
    if BY_NAME[config["row"]].kind == "external":
        return spawn_php(config)
    proc = subprocess.run(
        [sys.executable, __file__, "_row"],
        input=json.dumps(config),
        capture_output=True,
        text=True,
        timeout=120 + 4 * config["duration"],
    )
    lines = proc.stdout.strip().splitlines()
    if lines:
        with contextlib.suppress(ValueError):
            result: dict[str, Any] = json.loads(lines[-1])
            if proc.returncode == 0 or "error" in result:
                return result
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"row": config["row"], "error": tail[:300]}


# --- reporting ----------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for dist in (
        "httpx", "httpcore", "anyio", "sniffio", "cryptography", "h11", "httptools", "aiohttp",
        "httpx-aiohttp", "curl_cffi", "httpx-curl-cffi", "pyreqwest", "uvloop", "trio",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    versions.update(php_versions())
    return {
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "date": datetime.date.today().isoformat(),
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "versions": versions,
    }


def summarize(runs: list[dict[str, dict[str, Any]]], names: list[str]) -> dict[str, Any]:
    """Medians over runs; ratios are taken within each run, then their median."""
    summary: dict[str, Any] = {}
    for name in names:
        row = BY_NAME[name]
        base = "httpx-sync" if row.kind == "sync" else "httpx"
        entry: dict[str, Any] = {"what": row.what}
        results = [run[name] for run in runs if name in run]
        bad = [r for r in results if "error" in r or "skipped" in r]
        if bad:
            entry["note"] = bad[0].get("error") or bad[0].get("skipped")
        good = [r for r in results if "error" not in r and "skipped" not in r]
        for scenario in SCENARIOS:
            values = [r[scenario] for r in good]
            if not values:
                continue
            ratios, cpu_ratios = [], []
            for run in runs:
                mine, theirs = run.get(name, {}), run.get(base, {})
                if scenario in mine and scenario in theirs and theirs[scenario]["rate"]:
                    ratios.append(mine[scenario]["rate"] / theirs[scenario]["rate"])
                    cpu_ratios.append(theirs[scenario]["cpu_us"] / mine[scenario]["cpu_us"])
            entry[scenario] = {
                key: statistics.median(v[key] for v in values)
                for key in ("rate", "cpu_us", "rss_mb", "server_cpu", "connections")
            }
            entry[scenario]["ratio"] = statistics.median(ratios) if ratios else None
            # The same ratio from CPU per request: steadier on a machine others are using.
            entry[scenario]["cpu_ratio"] = statistics.median(cpu_ratios) if cpu_ratios else None
            entry[scenario]["errors"] = sum(v.get("errors", 0) for v in values)
        summary[name] = entry
    return summary


def table(summary: dict[str, Any]) -> str:
    lines = [
        "| row | seq req/s | × base | CPU µs/req | × base by CPU | c64 req/s | × base "
        "| CPU µs/req | × base by CPU | c64 conns | peak RSS MB | server CPU seq / c64 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, entry in summary.items():
        cells = [f"`{name}`"]
        for scenario in SCENARIOS:
            s = entry.get(scenario)
            if s is None:
                cells += ["–", "–", "–", "–"]
                continue
            ratio = f"{s['ratio']:.2f}" if s["ratio"] is not None else "–"
            cpu_ratio = f"{s['cpu_ratio']:.2f}" if s["cpu_ratio"] is not None else "–"
            cells += [f"{s['rate']:.0f}", ratio, f"{s['cpu_us']:.0f}", cpu_ratio]
        c64, seq = entry.get("c64"), entry.get("seq")
        cells.append(f"{c64.get('connections', 0):.0f}" if c64 else "–")
        cells.append(f"{c64['rss_mb']:.0f}" if c64 else "–")
        cells.append(
            f"{seq['server_cpu']:.0%} / {c64['server_cpu']:.0%}" if seq and c64 else "–"
        )
        failed = sum(entry[sc]["errors"] for sc in SCENARIOS if sc in entry)
        if failed:
            entry.setdefault("note", f"{failed} failed requests")
        if "note" in entry:
            cells[0] += f" ({entry['note']})"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny, 1 run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per scenario")
    parser.add_argument("--warmup", type=int, default=200, help="requests before measuring")
    parser.add_argument("--rows", default="", help="comma-separated; 'all' adds opt-in rows")
    parser.add_argument(
        "--server",
        choices=("fast", "fast-routed", "fast-fresh", "h11", "h11-reuse"),
        default="fast",
    )
    parser.add_argument("--server-cpu", type=int, default=1)
    parser.add_argument("--client-cpus", default="0", help="e.g. 0 or 0,1 ('' = no pinning)")
    parser.add_argument("--json", help="write the raw results and summary here")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.duration, args.warmup = 1, 0.3, 10
    if args.rows == "all":
        names = [row.name for row in ROWS]
    elif args.rows:
        names = args.rows.split(",")
    else:
        names = list(QUICK_ROWS) if args.quick else [r.name for r in ROWS if r.default]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown rows {unknown}; known: {list(BY_NAME)}")
    cpus = [int(c) for c in args.client_cpus.split(",") if c.strip()]
    if len(os.sched_getaffinity(0)) < 2:
        server_cpu, cpus = None, []  # one core: nothing to pin apart
    else:
        server_cpu = args.server_cpu
    os.chdir(HERE)
    info = machine()
    print(
        f"# {info['date']} · {info['cpu']} × {info['cores']} · Python {info['python']} · "
        f"server={args.server} on CPU {server_cpu}, client on CPU {cpus or 'any'} · "
        f"{args.runs} run(s) × {args.duration:g} s · load {info['load']}",
        flush=True,
    )
    server = ServerProcess(args.server, server_cpu)
    runs: list[dict[str, dict[str, Any]]] = []
    try:
        for number in range(args.runs):
            results: dict[str, dict[str, Any]] = {}
            for name in names:
                config = {
                    "row": name,
                    "options": server.options,
                    "server_pid": server.pid,
                    "duration": args.duration,
                    "warmup": args.warmup,
                    "cpus": cpus,
                }
                results[name] = spawn_row(config)
                r = results[name]
                brief = r.get("error") or r.get("skipped") or "  ".join(
                    f"{s} {r[s]['rate']:.0f}/s {r[s]['cpu_us']:.0f}µs srv {r[s]['server_cpu']:.0%}"
                    for s in SCENARIOS
                )
                print(f"  run {number + 1} {name:22} {brief}", file=sys.stderr, flush=True)
            runs.append(results)
    finally:
        server.stop()
    summary = summarize(runs, names)
    print(table(summary))
    if args.json:
        with open(args.json, "w") as f:
            raw = {"machine": info, "args": vars(args), "runs": runs, "summary": summary}
            json.dump(raw, f, indent=1)
    failed = [n for n, e in summary.items() if "note" in e and "not installed" not in e["note"]]
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_row":
        sys.path.insert(0, HERE)
        config = json.loads(sys.stdin.read())
        try:
            print(json.dumps(run_row(config)))
        except Exception as exc:
            leaf: BaseException = exc
            while getattr(leaf, "exceptions", None):  # an exception group from a task group
                leaf = leaf.exceptions[0]  # type: ignore[attr-defined]
            print(json.dumps({"row": config["row"], "error": f"{type(leaf).__name__}: {leaf}"}))
            raise
    elif len(sys.argv) > 1 and sys.argv[1] == "_serve":
        p = argparse.ArgumentParser()
        p.add_argument("_serve")
        p.add_argument("--engine", default="fast")
        p.add_argument("--cpu", type=int)
        a = p.parse_args()
        serve(a.engine, a.cpu)
    else:
        sys.exit(main())
