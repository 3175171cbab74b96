"""Where a request's CPU goes, without the network: crypto, httpx's client layer, the SDK.

    .venv/bin/python bench/overhead.py             # 5 000 requests per step
    .venv/bin/python bench/overhead.py --quick     # smoke test
    .venv/bin/python bench/overhead.py --profile   # + cProfile of the SDK step, own time

Every step sends the same signed APIv3 POST and verifies the same signed answer, but over
``httpx.MockTransport`` (no sockets), so the differences between steps are the costs of the
layers added, free of network and scheduler noise:

1. ``crypto``: hand-written sign + verify + JSON, called directly;
2. ``direct``: + ``httpx.Request`` / ``httpx.Response`` built around a prebuilt URL, the
   transport called directly (what skipping ``AsyncClient.send`` would cost);
3. ``httpx``: the same through ``httpx.AsyncClient(transport=MockTransport)``;
4. ``chain``: ``wechatpay_chain.Client(transport=MockTransport)``, ``await ...post(json=)``.

``chain - httpx`` is the SDK's own per-request CPU (the issue's budget: < 100 µs);
``httpx - crypto`` is httpx's model layer (URL, headers, Request/Response objects), which a
different transport does not remove.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import httpx
import throughput
from fastserver import BenchmarkWechatPay

from wechatpay_chain.testing._fake import private_pem

BASE_URL = "https://api.mch.weixin.qq.com/"


def setup() -> tuple[dict[str, Any], httpx.MockTransport]:
    """Client options and a transport answering like WeChat Pay (signed, reused per second)."""
    server = BenchmarkWechatPay()  # never started: only its keys and answer signing are used
    m = server.merchant
    options = {
        "mchid": m.mchid,
        "serial": m.serial,
        "private_key": private_pem(m.private_key).decode(),
        "certs": {k: v.decode() for k, v in server.certs().items()},
        "base_url": BASE_URL,
    }
    answer = throughput.dumps({"code_url": throughput.CODE_URL})

    def handler(request: httpx.Request) -> httpx.Response:
        headers = [("Content-Type", "application/json"), ("Request-ID", "08BENCH")]
        headers += server.sign_answer(answer)
        return httpx.Response(200, headers=headers, content=answer)

    return options, httpx.MockTransport(handler)


async def step_crypto(options: dict[str, Any], transport: Any, n: int) -> float:
    hand = throughput.HandWritten(options)
    answer_client = httpx.AsyncClient(transport=transport)
    sample = await answer_client.post(BASE_URL + "x")  # one signed answer to verify n times
    headers, content = sample.headers, sample.content
    c0 = time.process_time()
    for _ in range(n):
        body = throughput.dumps(throughput.PAYLOAD)
        hand.authorization("POST", throughput.PATH, body)
        hand.verify(
            headers["Wechatpay-Timestamp"],
            headers["Wechatpay-Nonce"],
            headers["Wechatpay-Signature"],
            headers["Wechatpay-Serial"],
            content,
        )
        throughput.check_answer(200, content)
    return (time.process_time() - c0) / n * 1e6


async def step_httpx(options: dict[str, Any], transport: Any, n: int) -> float:
    hand = throughput.HandWritten(options)
    client = httpx.AsyncClient(transport=transport)
    url = BASE_URL.rstrip("/") + throughput.PATH
    c0 = time.process_time()
    for _ in range(n):
        body = throughput.dumps(throughput.PAYLOAD)
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Authorization": hand.authorization("POST", throughput.PATH, body),
        }
        response = await client.post(url, content=body, headers=headers)
        hand.verify_httpx(response)
        throughput.check_answer(response.status_code, response.content)
    return (time.process_time() - c0) / n * 1e6


async def step_direct(options: dict[str, Any], transport: Any, n: int) -> float:
    """httpx models without ``AsyncClient.send``: a prebuilt URL, the transport called
    directly. What the SDK's ``_transmit`` could save by skipping the client layer."""
    hand = throughput.HandWritten(options)
    url = httpx.URL(BASE_URL.rstrip("/") + throughput.PATH)  # parsed once, reused
    fixed = [
        ("Host", url.netloc.decode("ascii")),
        ("Accept", "application/json"),
        ("Content-Type", "application/json"),
        ("User-Agent", "wechatpay-chain"),
    ]
    timeout = httpx.Timeout(15.0, connect=5.0).as_dict()
    c0 = time.process_time()
    for _ in range(n):
        body = throughput.dumps(throughput.PAYLOAD)
        headers = [*fixed, ("Authorization", hand.authorization("POST", throughput.PATH, body))]
        request = httpx.Request(
            "POST", url, headers=headers, content=body, extensions={"timeout": timeout}
        )
        response = await transport.handle_async_request(request)
        response.request = request
        await response.aread()
        hand.verify_httpx(response)
        throughput.check_answer(response.status_code, response.content)
    return (time.process_time() - c0) / n * 1e6


async def step_chain(
    options: dict[str, Any], transport: Any, n: int, profile: cProfile.Profile | None = None
) -> float:
    from wechatpay_chain import Client

    client = Client(**options, transport=transport)
    for _ in range(50):
        await client.v3.pay.transactions.native.post(json=throughput.PAYLOAD)
    if profile is not None:
        profile.enable()
    c0 = time.process_time()
    for _ in range(n):
        response = await client.v3.pay.transactions.native.post(json=throughput.PAYLOAD)
        if response.json().get("code_url") != throughput.CODE_URL:
            raise RuntimeError("unexpected answer")
    cpu = (time.process_time() - c0) / n * 1e6
    if profile is not None:
        profile.disable()
    await client.aclose()
    return cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile the chain step")
    args = parser.parse_args()
    n, repeat = (200, 1) if args.quick else (args.requests, args.repeat)
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {0})
    options, transport = setup()

    async def run() -> dict[str, float]:
        steps = {
            "crypto": step_crypto,
            "direct": step_direct,
            "httpx": step_httpx,
            "chain": step_chain,
        }
        found: dict[str, list[float]] = {name: [] for name in steps}
        for step in steps.values():
            await step(options, transport, 50)  # warm-up
        for _ in range(repeat):
            for name, step in steps.items():
                found[name].append(await step(options, transport, n))
        return {name: statistics.median(values) for name, values in found.items()}

    cpu = asyncio.run(run())
    print(f"CPU per request, median of {repeat} × {n} (MockTransport, no sockets):")
    print(f"  crypto + JSON, called directly      {cpu['crypto']:7.0f} µs")
    print(f"  + httpx models only, no AsyncClient {cpu['direct']:7.0f} µs"
          f"   (+{cpu['direct'] - cpu['crypto']:.0f})")
    print(f"  + httpx client layer (bare httpx)   {cpu['httpx']:7.0f} µs"
          f"   (+{cpu['httpx'] - cpu['crypto']:.0f})")
    print(f"  wechatpay-chain instead             {cpu['chain']:7.0f} µs"
          f"   (SDK's own: {cpu['chain'] - cpu['httpx']:+.0f})")
    if args.profile:
        profile = cProfile.Profile()
        asyncio.run(step_chain(options, transport, n, profile))
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats("tottime").print_stats(35)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
