"""Redis connections for the stores: redis-py's asyncio client on asyncio, its blocking client
in a worker thread on trio (redis-py has no trio client). One client (with its pool) per event
loop, made from a URL on first use; nothing imports redis before that.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from functools import partial
from typing import Any

import anyio
import sniffio

from .._exceptions import InvalidArgumentError

__all__ = ["RedisConnection", "is_redis_url", "unreachable"]

_SCHEMES = ("redis://", "rediss://", "unix://")


def is_redis_url(value: object) -> bool:
    return isinstance(value, str) and value.startswith(_SCHEMES)


def _import_redis() -> Any:
    try:
        import redis
    except ImportError:
        raise InvalidArgumentError(
            "the Redis stores need redis-py: pip install 'wechatpay-chain[redis]'"
        ) from None
    return redis


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says Redis could not be reached or did not answer in time."""
    try:
        import redis
    except ImportError:
        return False
    return isinstance(exc, redis.ConnectionError | redis.TimeoutError | OSError)


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    _, at, host = rest.rpartition("@")
    return f"{scheme}{sep}{host}" if at else url


class RedisConnection:
    """Runs commands and Lua scripts on the Redis server at ``url``, from any event loop."""

    def __init__(self, url: str, *, timeout: float = 2.0, what: str = "store") -> None:
        if not is_redis_url(url):
            raise InvalidArgumentError(
                f"{what} needs a redis://, rediss:// or unix:// URL, got {type(url).__name__}"
            )
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise InvalidArgumentError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        self._url = url
        self._timeout = float(timeout)
        self._lock = threading.Lock()
        self._async: dict[asyncio.AbstractEventLoop, Any] = {}
        self._sync: Any = None
        self._shas: dict[str, str] = {}

    @property
    def label(self) -> str:
        return _redact(self._url)

    def _options(self) -> dict[str, Any]:
        return {"socket_timeout": self._timeout, "socket_connect_timeout": self._timeout}

    def _async_client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            _import_redis()
            import redis.asyncio as redis_asyncio

            client = redis_asyncio.Redis.from_url(self._url, **self._options())
            with self._lock:
                for old in [k for k in self._async if k.is_closed()]:
                    self._async.pop(old, None)
                self._async[loop] = client
        return client

    def _sync_client(self) -> Any:
        with self._lock:
            if self._sync is None:
                redis = _import_redis()
                self._sync = redis.Redis.from_url(self._url, **self._options())
            return self._sync

    def _sha(self, script: str) -> str:
        sha = self._shas.get(script)
        if sha is None:
            sha = self._shas[script] = hashlib.sha1(script.encode()).hexdigest()
        return sha

    async def script(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """``EVALSHA`` (``EVAL`` the first time the server has not seen it)."""
        sha = self._sha(script)
        if sniffio.current_async_library() == "asyncio":
            client = self._async_client()
            try:
                return await client.evalsha(sha, len(keys), *keys, *args)
            except _import_redis().exceptions.NoScriptError:
                return await client.eval(script, len(keys), *keys, *args)
        return await anyio.to_thread.run_sync(partial(self._script_sync, script, sha, keys, args))

    def _script_sync(self, script: str, sha: str, keys: list[str], args: list[Any]) -> Any:
        client = self._sync_client()
        try:
            return client.evalsha(sha, len(keys), *keys, *args)
        except _import_redis().exceptions.NoScriptError:
            return client.eval(script, len(keys), *keys, *args)

    async def command(self, *args: Any) -> Any:
        if sniffio.current_async_library() == "asyncio":
            return await self._async_client().execute_command(*args)
        client = self._sync_client()
        return await anyio.to_thread.run_sync(partial(client.execute_command, *args))

    async def aclose(self) -> None:
        """Close this loop's client (asyncio) or the blocking one (trio)."""
        if sniffio.current_async_library() == "asyncio":
            client = self._async.pop(asyncio.get_running_loop(), None)
            if client is not None:
                await client.aclose()
            return
        with self._lock:
            client, self._sync = self._sync, None
        if client is not None:
            client.close()
