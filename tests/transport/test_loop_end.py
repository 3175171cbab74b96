"""Pools on an event loop close when that loop ends, even if the program never closed them."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import textwrap
import warnings

import trio

from wechatpay_chain import Client
from wechatpay_chain.testing import FakeWechatPay


def coupon(server: FakeWechatPay, no: str) -> dict[str, str]:
    return {"stock_id": "9856000", "out_request_no": no, "appid": "wx1",
            "stock_creator_mchid": server.merchant.mchid}


def open_connections(client: Client) -> int:
    engines = [p.plain._direct for p in client._connections._pools.values()]
    return sum(e.connections for e in engines if e is not None)


def test_asyncio_run_without_aclose_leaves_no_socket_open(
    wechatpay_server: FakeWechatPay,
) -> None:
    client: Client = wechatpay_server.client()

    async def main() -> int:
        answers = await asyncio.gather(
            *(
                client.v3.marketing.favor.users._openid_.coupons.post(
                    openid="o-1", json=coupon(wechatpay_server, f"l-{i}")
                )
                for i in range(4)
            )
        )
        assert all(a.status_code == 200 for a in answers)
        return open_connections(client)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert asyncio.run(main()) >= 1  # connections were open while the loop ran
        assert open_connections(client) == 0  # ...and closed by the loop's end
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    client.close()


def test_trio_run_without_aclose_closes_the_pools(wechatpay_server: FakeWechatPay) -> None:
    client: Client = wechatpay_server.client()

    seen = []

    async def main() -> bool:
        answer = await client.v3.marketing.favor.users._openid_.coupons.post(
            openid="o-1", json=coupon(wechatpay_server, "t-1")
        )
        assert answer.status_code == 200
        (pools,) = client._connections._pools.values()
        seen.append(pools)
        return bool(pools.plain.http.is_closed)

    for _ in range(3):
        assert trio.run(main) is False
        assert seen[-1].plain.http.is_closed  # closed when trio.run ended
        # ...and forgotten: a process running many trio.run keeps none of them
        assert client._connections.loops() == 0
    client.close()


def test_a_loop_closed_by_hand_is_forgotten_quietly() -> None:
    # A loop closed without shutdown_asyncgens (old-style code): the next loop's first call
    # drops its pools without any "Event loop is closed" noise from the finalizer.
    script = textwrap.dedent(
        """
        import asyncio, gc
        from wechatpay_chain.testing import FakeWechatPay

        with FakeWechatPay() as server:
            client = server.client()
            loop = asyncio.new_event_loop()
            loop.run_until_complete(client.v3.certificates.get())
            loop.close()
            asyncio.run(client.v3.certificates.get())
            gc.collect()
            print("pools", len(client._connections._pools))
            client.close()
        """
    )
    proc = subprocess.run(
        [sys.executable, "-W", "ignore::ResourceWarning", "-c", script],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "pools 0" in proc.stdout  # both loops forgotten (the second at its end)
    assert "Exception ignored" not in proc.stderr, proc.stderr
    assert "Event loop is closed" not in proc.stderr, proc.stderr
