"""What the engine's wire checks cost per request (issue 15): CPU µs, in one process.

    .venv/bin/python bench/engine_checks.py            # 20 000 requests per variant, 3 rounds

Measures (1) the readability check alone: one ``poll()`` on an idle connection's socket,
as ``_take_idle`` does it; (2) the engine's CPU per sequential GET against a raw asyncio
server on loopback, with the checks as shipped and with the readability check stubbed out
(the head bounds and the state machine cannot be switched off; their cost is inside (2)).
The server runs in the same process, so (2) includes it: compare the variants, not the
absolute numbers. Results go into bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx

from wechatpay_chain.transport import engine as _engine
from wechatpay_chain.transport.engine import AsyncEngine

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"


class _Server(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.transport.write(ANSWER * data.count(b"\r\n\r\n"))


async def per_request(n: int, stub_poll: bool) -> float:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    engine = AsyncEngine()
    request = httpx.Request("GET", f"http://127.0.0.1:{port}/v3/x", headers={"Host": "x"})
    saved = _engine._Connection.readable
    if stub_poll:
        _engine._Connection.readable = lambda self: False  # type: ignore[method-assign]
    try:
        for _ in range(200):
            (await engine.handle_async_request(request)).stream.complete_body()  # type: ignore[attr-defined]
        started = time.process_time()
        for _ in range(n):
            (await engine.handle_async_request(request)).stream.complete_body()  # type: ignore[attr-defined]
        return (time.process_time() - started) / n * 1e6
    finally:
        _engine._Connection.readable = saved  # type: ignore[method-assign]
        await engine.aclose()
        server.close()


async def poll_cost(n: int) -> float:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    engine = AsyncEngine()
    await engine.handle_async_request(httpx.Request("GET", f"http://127.0.0.1:{port}/"))
    (conn,) = engine._connections
    started = time.perf_counter()
    for _ in range(n):
        conn.readable()
    took = (time.perf_counter() - started) / n * 1e6
    await engine.aclose()
    server.close()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"readability check alone: {asyncio.run(poll_cost(200_000)):.2f} µs")
    for round_ in range(args.rounds):
        shipped = asyncio.run(per_request(args.requests, stub_poll=False))
        stubbed = asyncio.run(per_request(args.requests, stub_poll=True))
        print(
            f"round {round_ + 1}: CPU per request (client + in-process server) "
            f"{shipped:.1f} µs with the check, {stubbed:.1f} µs without ({shipped - stubbed:+.1f})"
        )


if __name__ == "__main__":
    main()
