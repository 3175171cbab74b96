"""pytest fixtures: ``wechatpay_server`` (a running fake server) and ``wechatpay_client``;
``wechatpay_tls_server`` and ``wechatpay_tls_client`` for HTTPS with merchant certificates.

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


@pytest.fixture(scope="session")
def _wechatpay_session_tls_server() -> Iterator[FakeWechatPay]:
    from ._fake import FakeWechatPay

    server = FakeWechatPay(tls=True).start()
    yield server
    server.stop()


@pytest.fixture
def wechatpay_tls_server(_wechatpay_session_tls_server: FakeWechatPay) -> FakeWechatPay:
    """The fake server on HTTPS (``FakeWechatPay(tls=True)``), reset: APIv3 and APIv2 both go
    there, and ``security=True`` endpoints need the merchant certificate its CA issued."""
    _wechatpay_session_tls_server.reset()
    return _wechatpay_session_tls_server


@pytest.fixture
def wechatpay_tls_client(wechatpay_tls_server: FakeWechatPay) -> Iterator[Client]:
    """A client for ``wechatpay_tls_server``: trusts its CA, holds the merchant certificate."""
    client: Any = wechatpay_tls_server.client()
    yield client
    client.close()
