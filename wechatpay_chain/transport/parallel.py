"""APIv3 request signing on spare cores while other requests of the same event loop are in flight.

An RSA-2048 signature is most of the CPU a request costs the client, and ``cryptography``
releases the GIL while it computes one. When an asyncio loop has several requests in flight
and the process may use more than one core, the signatures are computed by a few worker
threads while the loop goes on with sockets, parsing and verification. A request gains
nothing from a thread while its loop has little else to do (the hand-over only adds
latency), so below ``PARALLEL_FROM`` requests in flight on the loop it is signed inline.

Results come back through one inbox per loop: a worker appends and wakes the loop only when
the inbox was empty, so a loop busy with many requests pays one wake-up for several
signatures. When more signatures wait than two per worker, the loop signs the next one
itself: its core then shares the work rather than idling behind a queue. Under trio, or with
one usable core, everything is signed inline. bench/README.md has the measurements.
"""

from __future__ import annotations

import asyncio
import base64
import os
import queue
import threading
from asyncio import _get_running_loop
from collections import deque
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = ["PARALLEL_FROM", "LoopLoad", "SigningThreads", "loop_load", "signing_threads"]

#: Requests in flight on a loop (this one included) from which signatures go to the workers.
PARALLEL_FROM = 4

_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()

_Outcome = tuple["asyncio.Future[str]", str | None, BaseException | None]


class LoopLoad:
    """Per event loop: how many signed requests are in flight, and the inbox of signatures."""

    __slots__ = ("_armed", "_done", "_lock", "inflight", "loop", "threads")

    def __init__(self, loop: asyncio.AbstractEventLoop, threads: SigningThreads) -> None:
        self.loop = loop
        self.threads = threads
        #: Requests between their signing and their answer (or failure) on this loop.
        self.inflight = 0
        self._done: deque[_Outcome] = deque()
        self._lock = threading.Lock()
        self._armed = False

    def sign(self, key: rsa.RSAPrivateKey, message: bytes) -> str | asyncio.Future[str]:
        """The signature now (computed here), or a future a worker fulfils: few requests in
        flight, or workers already behind, and this loop's core signs it itself."""
        threads = self.threads
        if self.inflight >= PARALLEL_FROM and not threads.behind():
            return threads.sign(self, key, message)
        return base64.b64encode(key.sign(message, _PKCS1V15, _SHA256)).decode("ascii")

    def deliver(self, outcome: _Outcome) -> None:
        """From a worker thread: hand a signature (or its failure) back to the loop."""
        self._done.append(outcome)
        with self._lock:
            if self._armed:
                return
            self._armed = True
        try:
            self.loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    def _drain(self) -> None:
        with self._lock:
            self._armed = False
        done = self._done
        while done:
            future, signature, error = done.popleft()
            if future.done():  # the waiting request was cancelled
                continue
            if error is None:
                future.set_result(signature)  # type: ignore[arg-type]
            else:
                future.set_exception(error)


class SigningThreads:
    """A few daemon threads that compute SHA256withRSA signatures for event loops."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._jobs: queue.SimpleQueue[tuple[LoopLoad, asyncio.Future[str], Any, bytes]] = (
            queue.SimpleQueue()
        )
        self._loads: dict[asyncio.AbstractEventLoop, LoopLoad] = {}
        self._lock = threading.Lock()
        self._started = False
        #: Signatures computed by the workers so far (for tests and diagnostics).
        self.signed = 0

    def load(self, loop: asyncio.AbstractEventLoop) -> LoopLoad:
        load = self._loads.get(loop)
        if load is None:
            with self._lock:
                # Forget loops that were closed, so a process that runs many short loops
                # (asyncio.run per batch, the tests) does not keep them all.
                for old in [old for old in self._loads if old.is_closed()]:
                    del self._loads[old]
                load = self._loads.setdefault(loop, LoopLoad(loop, self))
        return load

    def behind(self) -> bool:
        """Whether more signatures wait than two per worker (the threshold that measured
        best, bench/README.md: the loop's own core then signs some too, instead of queueing)."""
        return self._jobs.qsize() >= 2 * self.threads

    def sign(self, load: LoopLoad, key: rsa.RSAPrivateKey, message: bytes) -> asyncio.Future[str]:
        """The base64 signature of ``message``, computed on a worker thread."""
        if not self._started:
            self._start()
        future: asyncio.Future[str] = load.loop.create_future()
        self._jobs.put((load, future, key, message))
        return future

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            for number in range(self.threads):
                worker = threading.Thread(
                    target=self._work, name=f"wechatpay-chain-signer-{number}", daemon=True
                )
                worker.start()
            self._started = True

    def _work(self) -> None:
        jobs = self._jobs
        while True:
            load, future, key, message = jobs.get()
            try:
                raw = key.sign(message, _PKCS1V15, _SHA256)
                self.signed += 1
                load.deliver((future, base64.b64encode(raw).decode("ascii"), None))
            except BaseException as error:  # handed to the waiting request, never lost
                load.deliver((future, None, error))


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


_shared: SigningThreads | None = None
_resolved = False
_shared_lock = threading.Lock()


def signing_threads() -> SigningThreads | None:
    """The process's signing threads, or None when the process may use only one core."""
    global _shared, _resolved
    if not _resolved:
        with _shared_lock:
            if not _resolved:
                cores = _usable_cores()
                _shared = SigningThreads(min(cores, 4)) if cores > 1 else None
                _resolved = True
    return _shared


def loop_load() -> LoopLoad | None:
    """The running asyncio loop's signing load, or None (trio, or a single usable core)."""
    threads = signing_threads()
    if threads is None:
        return None
    loop = _get_running_loop()
    return None if loop is None else threads.load(loop)


def _forget_after_fork() -> None:
    # A forked child has none of the parent's threads (and a lock held by one of them at the
    # fork would stay held): it starts afresh when it signs.
    global _shared, _resolved, _shared_lock
    _shared, _resolved, _shared_lock = None, False, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
