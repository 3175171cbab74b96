"""Platform certificates kept fresh: single-flight refresh and ``auto_refresh``."""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from types import TracebackType
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import httpx

from .._exceptions import InvalidArgumentError, PublicKeyOnlyError, WechatpayError
from ..protocol.certificates import PlatformCertificate
from ..transport.bridge import BLOCKED_LOOP
from ..transport.registry import forget_closed_loops, loop_key

if TYPE_CHECKING:
    from .._config import Config
    from .session import Session

__all__ = ["AutoRefresh", "Refresher"]

logger = logging.getLogger("wechatpay_chain.certificates")

#: Platform certificate serials are hex; a ``PUB_KEY_ID_…`` or junk serial cannot be fetched.
_CERTIFICATE_SERIAL = re.compile(r"[0-9A-Fa-f]{1,64}")
#: What a refresh may fail with and still leave the client working on the keys it has.
_REFRESH_ERRORS = (WechatpayError, httpx.HTTPError, OSError)
_INSTALL_LOCK = threading.Lock()

Download = Callable[[], Awaitable[list[PlatformCertificate]]]
#: Seconds between looks at the process-wide lock while another loop downloads.
_POLL = 0.02


class Refresher:
    """Single-flight, rate-limited refresh for one merchant configuration.

    Installed as ``Config.resolve_serial``. One download runs at a time in the process: a
    per-event-loop lock queues the requests of one loop, and a thread lock orders loops
    against each other (asyncio, trio, the sync bridge). ``fetch`` downloads, verifies and
    trusts the certificates.
    """

    def __init__(self, config: Config, fetch: Download, min_interval: float) -> None:
        self._config = config
        self._fetch = fetch
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._guard = threading.Lock()
        # Weak: an entry goes with its loop (asyncio) or its run (trio's token).
        self._loop_locks: weakref.WeakKeyDictionary[object, anyio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        #: The event loop (or trio token) that holds ``_lock``, while one does.
        self._holder: object | None = None
        #: Downloads started so far: a download that started after an answer arrived and
        #: did not bring its serial settles that answer.
        self.started = 0
        self._last_unknown = -math.inf
        self.public_key_only = False
        self.users = 0
        _REFRESHERS.add(self)

    def _forget_after_fork(self) -> None:
        # A download running in the parent at the fork holds the lock there, not here.
        self._lock = threading.Lock()
        self._guard = threading.Lock()
        self._holder = None
        self._loop_locks = weakref.WeakKeyDictionary()

    def _loop_lock(self) -> anyio.Lock:
        key = loop_key()
        with self._guard:
            lock = self._loop_locks.get(key)
            if lock is None:
                forget_closed_loops(self._loop_locks)
                lock = self._loop_locks[key] = anyio.Lock()
            return lock

    @asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        async with self._loop_lock():
            # Another event loop may be downloading: poll from this loop rather than wait in a
            # worker thread, so a cancelled wait can never leave the lock taken by nobody.
            while not self._lock.acquire(blocking=False):
                holder = self._holder
                if holder is not None and holder is BLOCKED_LOOP.get():
                    raise WechatpayError(
                        "a *_sync call made inside an event loop needs a certificate refresh "
                        "that this same loop is running, and blocks it: await the async verb "
                        "in async code"
                    )
                await anyio.sleep(_POLL)
            self._holder = loop_key()
            try:
                yield
            finally:
                self._holder = None
                self._lock.release()

    async def _download_and_trust(self) -> list[PlatformCertificate]:
        self.started += 1
        try:
            certificates = await self._fetch()
        except PublicKeyOnlyError:
            self.public_key_only = True
            raise
        self.public_key_only = False
        return certificates

    async def refresh(self) -> list[PlatformCertificate]:
        async with self._exclusive():
            return await self._download_and_trust()

    async def __call__(self, serial: str) -> bool:
        """Called by the verifier for an unknown serial: True once it is trusted."""
        if not _CERTIFICATE_SERIAL.fullmatch(serial):
            return False
        seen = self.started
        keys = self._config.trusted_keys()
        async with self._exclusive():
            if serial in keys:
                return True
            if self.started != seen:
                return False  # a download that began after this answer did not bring it
            now = time.monotonic()
            if now - self._last_unknown < self.min_interval:
                logger.debug("unknown serial %s: refresh rate-limited", serial[:64])
                return False
            self._last_unknown = now
            try:
                await self._download_and_trust()
            except _REFRESH_ERRORS as exc:
                logger.warning(
                    "refresh for unknown serial %s failed, keeping the %d trusted keys: %s",
                    serial[:64],
                    len(keys),
                    exc,
                )
                return False
            return serial in keys


_REFRESHERS: weakref.WeakSet[Refresher] = weakref.WeakSet()


def _forget_after_fork() -> None:
    for refresher in list(_REFRESHERS):
        refresher._forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


class AutoRefresh:
    """Keeps a client's platform certificates fresh while entered (``async with`` or ``with``).

    While active: an answer signed by an unknown certificate serial triggers one download
    (single-flight, at most one per ``min_interval`` seconds) and is checked again; a
    background task downloads every ``interval`` seconds and ``ahead`` seconds before the
    newest certificate expires. A failed download keeps every key the client has.
    """

    def __init__(
        self,
        client: Session,
        fetch: Download,
        *,
        interval: float,
        ahead: float,
        min_interval: float,
        initial: bool,
    ) -> None:
        for name, value in (
            ("interval", interval),
            ("ahead", ahead),
            ("min_interval", min_interval),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise InvalidArgumentError(f"{name} must be a number of seconds >= 0")
        if interval <= 0:
            raise InvalidArgumentError("interval must be > 0 seconds")
        self._client = client
        self._fetch = fetch
        self.interval = float(interval)
        self.ahead = float(ahead)
        self.min_interval = float(min_interval)
        self.initial = initial
        self._refresher: Refresher | None = None
        self._group: anyio.abc.TaskGroup | None = None
        self._future: Future[None] | None = None
        #: The initial download failed: the background task retries soon, not in ``interval``.
        self._retry_soon = False

    @property
    def public_key_only(self) -> bool:
        """True when WeChat Pay said this merchant has no certificates (nothing to refresh)."""
        return self._refresher is not None and self._refresher.public_key_only

    # --- install / uninstall the verifier hook -----------------------------------------------
    def _install(self) -> Refresher:
        config = self._client.config
        with _INSTALL_LOCK:
            current = config.resolve_serial
            if isinstance(current, Refresher):
                refresher = current
            elif current is None:
                config.trusted_keys()  # unknown serials now fail as VerificationError
                refresher = Refresher(config, self._fetch, self.min_interval)
                config.resolve_serial = refresher
            else:
                raise InvalidArgumentError(
                    "config.resolve_serial is already set by something other than auto_refresh"
                )
            refresher.users += 1
        self._refresher = refresher
        return refresher

    def _uninstall(self) -> None:
        refresher, self._refresher = self._refresher, None
        if refresher is None:
            return
        config = self._client.config
        with _INSTALL_LOCK:
            refresher.users -= 1
            if refresher.users == 0 and config.resolve_serial is refresher:
                config.resolve_serial = None

    # --- the work ------------------------------------------------------------------------
    async def _start(self) -> Refresher:
        refresher = self._install()
        if not self.initial:
            return refresher
        try:
            await refresher.refresh()
        except PublicKeyOnlyError:
            logger.info("no platform certificates (public-key mode): nothing to refresh")
        except _REFRESH_ERRORS as exc:
            if not len(self._client.config.trusted_keys()):
                self._uninstall()
                raise
            logger.warning("initial platform certificate download failed: %s", exc)
            self._retry_soon = True
        except BaseException:
            self._uninstall()
            raise
        return refresher

    def _next_delay(self, refresher: Refresher, failures: int) -> float | None:
        if refresher.public_key_only:
            return None
        if failures:
            return min(self.interval, max(self.min_interval, 0.05) * 2.0 ** (failures - 1))
        delay = self.interval
        expiries = [e.not_after for e in self._client.config.trusted_keys().values() if e.not_after]
        if expiries:
            left = (max(expiries) - datetime.now(timezone.utc)).total_seconds()
            delay = min(delay, left - self.ahead)
        return max(delay, self.min_interval, 0.05)

    async def _background(self, refresher: Refresher) -> None:
        failures = 1 if self._retry_soon else 0
        while True:
            delay = self._next_delay(refresher, failures)
            if delay is None:
                return
            await anyio.sleep(delay)
            try:
                await refresher.refresh()
                failures = 0
            except PublicKeyOnlyError:
                logger.info("no platform certificates (public-key mode): refresh stops")
            except _REFRESH_ERRORS as exc:
                failures += 1
                logger.warning(
                    "platform certificate refresh failed (%d in a row), keeping the trusted "
                    "keys: %s",
                    failures,
                    exc,
                )

    # --- async with ------------------------------------------------------------------------
    async def __aenter__(self) -> AutoRefresh:
        if self._refresher is not None:
            raise RuntimeError("this auto_refresh() is already active")
        refresher = await self._start()
        try:
            group = anyio.create_task_group()
            await group.__aenter__()
        except BaseException:
            self._uninstall()
            raise
        self._group = group
        group.start_soon(self._background, refresher)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        group, self._group = self._group, None
        try:
            if group is not None:
                group.cancel_scope.cancel()
                await group.__aexit__(None, None, None)
        finally:
            self._uninstall()

    # --- with: the background task runs on the client's sync bridge ----------------------
    def __enter__(self) -> AutoRefresh:
        if self._refresher is not None:
            raise RuntimeError("this auto_refresh() is already active")
        refresher = self._client._run_sync(self._start)
        try:
            self._future = self._client._submit_sync(lambda: self._background(refresher))
        except BaseException:
            self._uninstall()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        future, self._future = self._future, None
        try:
            if future is not None:
                future.cancel()
        finally:
            self._uninstall()
