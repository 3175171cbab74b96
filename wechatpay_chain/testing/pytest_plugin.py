"""pytest fixtures: ``wechatpay_server`` (a running fake server) and ``wechatpay_client``.

Loaded automatically when wechatpay-chain is installed. The server lives for the session and is
reset before each test; the client is a fresh :class:`wechatpay_chain.Client` configured for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .._client import Client
    from ._fake import FakeWechatPay


@pytest.fixture(scope="session")
def _wechatpay_session_server() -> Iterator[FakeWechatPay]:
    from ._fake import FakeWechatPay

    server = FakeWechatPay().start()
    yield server
    server.stop()


@pytest.fixture
def wechatpay_server(_wechatpay_session_server: FakeWechatPay) -> FakeWechatPay:
    """The fake WeChat Pay server, reset: no recorded requests, faults or custom routes."""
    _wechatpay_session_server.reset()
    return _wechatpay_session_server


@pytest.fixture
def wechatpay_client(wechatpay_server: FakeWechatPay) -> Iterator[Client]:
    """A client configured for ``wechatpay_server``."""
    client: Any = wechatpay_server.client()
    yield client
    client.close()
