"""Shared fixtures: async tests run on asyncio and trio; the fake server comes from the plugin."""

from __future__ import annotations

from pathlib import Path

import pytest
from _paths import FIXTURES
from _servers import postgres_dsn, redis_url  # noqa: F401 - session fixtures, started on use
from hypothesis import HealthCheck, settings

# Shared 2-core machines: a slow example is load, not a bug. Keep the checks, drop the clock.
settings.register_profile(
    "wechatpay", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("wechatpay")



@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"test fixtures not found at {FIXTURES}")
    return FIXTURES
