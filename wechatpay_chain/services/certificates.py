"""Platform certificates: verified download, refresh, and automatic refresh.

WeChat Pay signs its answers with a platform certificate, which rotates, or with a platform
public key (``PUB_KEY_ID_…``), which does not. ``GET v3/certificates`` lists the certificates,
each sealed with AES-256-GCM under the merchant's APIv3 key.

Trust. A downloaded certificate is trusted because only WeChat Pay and the merchant know the
APIv3 key that authenticates it, and the answer's own signature must verify too: with a key
the client already trusts when it names one, otherwise (bootstrap, the first download or a
rotation) with the certificate of that serial inside the answer, as WeChat Pay documents.
``download(bootstrap=False)`` accepts only the first. Certificates outside their validity
dates are never trusted, and a refresh only ever adds keys.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import Future
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.from_thread
import anyio.to_thread
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .. import crypto
from .._exceptions import (
    APIError,
    DecryptionError,
    InvalidArgumentError,
    VerificationError,
    WechatpayError,
)
from ..crypto.platform import PlatformKey, PlatformKeys
from ..protocol import v3 as _v3

if TYPE_CHECKING:
    from .._client import Client
    from .._config import Config

__all__ = [
    "AutoRefresh",
    "Certificates",
    "PlatformCertificate",
    "PublicKeyOnlyError",
    "decrypt_certificates",
    "verify_download",
]

logger = logging.getLogger("wechatpay_chain.certificates")

TEMPLATE = "v3/certificates"
#: Platform certificate serials are hex; a ``PUB_KEY_ID_…`` or junk serial cannot be fetched.
_CERTIFICATE_SERIAL = re.compile(r"[0-9A-Fa-f]{1,64}")
#: What a refresh may fail with and still leave the client working on the keys it has.
_REFRESH_ERRORS = (WechatpayError, httpx.HTTPError, OSError)
_INSTALL_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class PlatformCertificate:
    """A verified platform certificate: serial, validity and the certificate itself."""

    serial: str
    effective_time: datetime
    expire_time: datetime
    certificate: x509.Certificate = field(repr=False, compare=False)
    key: rsa.RSAPublicKey = field(repr=False, compare=False)

    @property
    def pem(self) -> bytes:
        """The certificate as PEM, as saved in ``wechatpay_<serial>.pem``."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def platform_key(self) -> PlatformKey:
        return PlatformKey(self.serial, self.key, self.effective_time, self.expire_time)


class PublicKeyOnlyError(APIError):
    """The merchant has no platform certificate: WeChat Pay signs with its platform public key.

    WeChat Pay answers ``RESOURCE_NOT_EXISTS``; give the public key in ``certs`` instead.
    """

    @classmethod
    def from_error(cls, error: APIError) -> PublicKeyOnlyError:
        return cls(
            "this merchant has no platform certificates (public-key mode): WeChat Pay signs "
            "with the platform public key; download pub_key.pem from the merchant platform "
            "and give it as certs={'PUB_KEY_ID_…': 'file:///path/pub_key.pem'}",
            request=error.request,
            response=error.response,
            code=error.code,
            detail=error.detail,
        )


# --- sans-I/O: decrypting and verifying an answer --------------------------------------------


def _field(entry: dict[str, Any], name: str, where: str) -> str:
    value = entry.get(name)
    if not isinstance(value, str) or not value:
        raise VerificationError(f"{where}: {name} is missing or not a string")
    return value


def _decrypt_entry(entry: object, apiv3_key: bytes, index: int) -> PlatformCertificate:
    where = f"v3/certificates data[{index}]"
    if not isinstance(entry, dict):
        raise VerificationError(f"{where} is not an object")
    serial = _field(entry, "serial_no", where).upper()
    where = f"certificate {serial[:64]}"
    sealed = entry.get("encrypt_certificate")
    if not isinstance(sealed, dict):
        raise VerificationError(f"{where}: encrypt_certificate is missing")
    algorithm = _field(sealed, "algorithm", where)
    if algorithm != "AEAD_AES_256_GCM":
        raise VerificationError(f"{where}: algorithm {algorithm[:32]!r} is not AEAD_AES_256_GCM")
    associated = sealed.get("associated_data") or ""
    if not isinstance(associated, str):
        raise VerificationError(f"{where}: associated_data is not a string")
    try:
        pem = crypto.aes_gcm_decrypt_bytes(
            _field(sealed, "ciphertext", where),
            apiv3_key,
            _field(sealed, "nonce", where),
            associated,
        )
    except DecryptionError as exc:
        raise DecryptionError(f"{where}: {exc}") from None
    try:
        certificate = crypto.load_certificate(pem, what=where)
        key = crypto.load_public_key(certificate, what=where)
        actual = crypto.certificate_serial(certificate)
    except InvalidArgumentError as exc:
        raise VerificationError(str(exc)) from None
    if actual != serial:
        raise VerificationError(f"{where}: the decrypted certificate has serial {actual}")
    not_before, not_after = crypto.certificate_validity(certificate)
    return PlatformCertificate(serial, not_before, not_after, certificate, key)


def decrypt_certificates(
    body: bytes, apiv3_key: bytes, *, now: datetime
) -> tuple[list[PlatformCertificate], list[str]]:
    """The certificates of a ``v3/certificates`` answer valid at ``now``, and why the others
    were left out (expired, not yet valid).

    A malformed answer, a certificate whose serial is not the one announced, or one that
    does not decrypt raises: nothing of such an answer is trusted.
    """
    try:
        payload = json.loads(body)
    except ValueError:
        raise VerificationError("v3/certificates answer is not JSON") from None
    entries = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(entries, list):
        raise VerificationError("v3/certificates answer has no data list")
    valid: dict[str, PlatformCertificate] = {}
    rejected: list[str] = []
    for index, entry in enumerate(entries):
        cert = _decrypt_entry(entry, apiv3_key, index)
        if now < cert.effective_time:
            rejected.append(f"{cert.serial} is not valid before {cert.effective_time}")
        elif now > cert.expire_time:
            rejected.append(f"{cert.serial} expired at {cert.expire_time}")
        else:
            valid[cert.serial] = cert
    return list(valid.values()), rejected


def verify_download(
    headers: httpx.Headers,
    body: bytes,
    certificates: Iterable[PlatformCertificate],
    trusted: PlatformKeys | None,
    *,
    now: float,
    bootstrap: bool = True,
) -> str:
    """Check the answer's signature; return the serial that signed it.

    A serial the client trusts is checked with that key. Otherwise, with ``bootstrap``, the
    answer must be signed by one of the (decrypted, valid) certificates it carries.
    """
    signed = _v3.signed_headers(headers, now=now)
    message = _v3.response_message(signed.timestamp, signed.nonce, body)
    serial = signed.serial
    if trusted is not None and serial in trusted:
        trusted.verify(
            serial, message, signed.signature, now=datetime.fromtimestamp(now, timezone.utc)
        )
        return serial
    own = {cert.serial: cert for cert in certificates}.get(serial.upper())
    if own is None:
        raise VerificationError(
            f"v3/certificates answer is signed by serial {serial[:64]!r}, which is neither "
            "trusted nor one of the valid certificates it carries"
        )
    if not bootstrap:
        raise VerificationError(
            f"v3/certificates answer is signed by {serial}, which is not trusted yet, and "
            "bootstrap=False forbids verifying it with the certificate it carries"
        )
    if not crypto.verify_sha256_rsa(message, signed.signature, own.key):
        raise VerificationError(f"v3/certificates answer: signature by {serial} does not verify")
    return serial


def _check_against(trusted: PlatformKeys | None, certificates: list[PlatformCertificate]) -> None:
    """A serial the client trusts must come back with the same key."""
    if trusted is None:
        return
    for cert in certificates:
        known = trusted.get(cert.serial)
        if known is not None and known.key.public_numbers() != cert.key.public_numbers():
            raise VerificationError(
                f"downloaded certificate {cert.serial} has another key than the trusted "
                "certificate of that serial"
            )


# --- I/O ---------------------------------------------------------------------------------------


def _unverified(client: Client) -> Client:
    """A client sharing ``client``'s connections whose answers this module verifies itself."""
    if "verifier" in client.middlewares.names:
        return client.without("verifier")
    return client


async def _download(client: Client, *, bootstrap: bool) -> list[PlatformCertificate]:
    """``client`` must be unverified: the download is checked here, bootstrap included."""
    config = client.config
    apiv3_key = config.apiv3_key
    if apiv3_key is None:
        raise InvalidArgumentError(
            "apiv3_key is required to decrypt downloaded platform certificates"
        )
    try:
        response = await client.chain(TEMPLATE).get()
    except APIError as exc:
        if exc.code == "RESOURCE_NOT_EXISTS":
            raise PublicKeyOnlyError.from_error(exc) from None
        raise
    request_id = response.headers.get("Request-ID")
    where = f" (Request-ID {request_id})" if request_id else ""
    now = time.time()
    try:
        certificates, rejected = decrypt_certificates(
            response.content, apiv3_key, now=datetime.fromtimestamp(now, timezone.utc)
        )
        if not certificates:
            reasons = "; ".join(rejected) or "the list is empty"
            raise VerificationError(f"v3/certificates has no valid certificate: {reasons}")
        verify_download(
            response.headers,
            response.content,
            certificates,
            config.platform_keys,
            now=now,
            bootstrap=bootstrap,
        )
        _check_against(config.platform_keys, certificates)
    except (VerificationError, DecryptionError) as exc:
        raise type(exc)(f"{exc}{where}") from None
    for reason in rejected:
        logger.warning("platform certificate left out: %s", reason)
    return certificates


def _trust(config: Config, certificates: list[PlatformCertificate]) -> None:
    config.trusted_keys().add(*(cert.platform_key() for cert in certificates))


class _Refresher:
    """Single-flight, rate-limited refresh for one merchant configuration.

    Installed as ``Config.resolve_serial``. One download runs at a time in the process: a
    per-event-loop lock queues the requests of one loop without threads, and a thread lock
    (waited for from a worker thread) orders loops against each other (asyncio, trio, the
    sync bridge).
    """

    def __init__(self, client: Client, min_interval: float) -> None:
        self._client = client
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._guard = threading.Lock()
        self._loop_locks: dict[object, anyio.Lock] = {}
        #: Downloads started so far: a download that started after an answer arrived and
        #: did not bring its serial settles that answer.
        self.started = 0
        self.last_success: float | None = None
        self._last_unknown = -math.inf
        self.public_key_only = False
        self.users = 0

    def _loop_lock(self) -> anyio.Lock:
        from ..transport.connections import loop_key

        key = loop_key()
        with self._guard:
            lock = self._loop_locks.get(key)
            if lock is None:
                lock = self._loop_locks[key] = anyio.Lock()
            return lock

    @asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        async with self._loop_lock():
            if not self._lock.acquire(blocking=False):
                # Another event loop is downloading. The wait is not abandoned on
                # cancellation, so a lock taken by the worker thread is always released.
                while not await anyio.to_thread.run_sync(self._lock.acquire, True, 0.2):
                    pass
            try:
                yield
            finally:
                self._lock.release()

    async def _download_and_trust(self) -> list[PlatformCertificate]:
        self.started += 1
        try:
            certificates = await _download(self._client, bootstrap=True)
        except PublicKeyOnlyError:
            self.public_key_only = True
            raise
        _trust(self._client.config, certificates)
        self.public_key_only = False
        self.last_success = time.monotonic()
        logger.info(
            "platform certificates refreshed: %s",
            ", ".join(f"{c.serial} (expires {c.expire_time:%Y-%m-%d})" for c in certificates),
        )
        return certificates

    async def refresh(self) -> list[PlatformCertificate]:
        async with self._exclusive():
            return await self._download_and_trust()

    async def __call__(self, serial: str) -> bool:
        """Called by the verifier for an unknown serial: True once it is trusted."""
        if not _CERTIFICATE_SERIAL.fullmatch(serial):
            return False
        seen = self.started
        keys = self._client.config.trusted_keys()
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


class AutoRefresh:
    """Keeps a client's platform certificates fresh while entered (``async with`` or ``with``).

    While active: an answer signed by an unknown certificate serial triggers one download
    (single-flight, at most one per ``min_interval`` seconds) and is checked again; a
    background task downloads every ``interval`` seconds and ``ahead`` seconds before the
    newest certificate expires. A failed download keeps every key the client has.
    """

    def __init__(
        self,
        client: Client,
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
        if client.config.apiv3_key is None:
            raise InvalidArgumentError(
                "auto_refresh needs apiv3_key to decrypt downloaded platform certificates"
            )
        self._client = _unverified(client)
        self.interval = float(interval)
        self.ahead = float(ahead)
        self.min_interval = float(min_interval)
        self.initial = initial
        self._refresher: _Refresher | None = None
        self._group: anyio.abc.TaskGroup | None = None
        self._portal_cm: AbstractContextManager[anyio.from_thread.BlockingPortal] | None = None
        self._portal: anyio.from_thread.BlockingPortal | None = None
        self._future: Future[None] | None = None
        #: The initial download failed: the background task retries soon, not in ``interval``.
        self._retry_soon = False

    @property
    def public_key_only(self) -> bool:
        """True when WeChat Pay said this merchant has no certificates (nothing to refresh)."""
        return self._refresher is not None and self._refresher.public_key_only

    # --- install / uninstall the verifier hook -----------------------------------------------
    def _install(self) -> _Refresher:
        config = self._client.config
        with _INSTALL_LOCK:
            current = config.resolve_serial
            if isinstance(current, _Refresher):
                refresher = current
            elif current is None:
                config.trusted_keys()  # unknown serials now fail as VerificationError
                refresher = _Refresher(self._client, self.min_interval)
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
    async def _start(self) -> _Refresher:
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

    def _next_delay(self, refresher: _Refresher, failures: int) -> float | None:
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

    async def _background(self, refresher: _Refresher) -> None:
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

    # --- with (a thread of its own runs the background task) ----------------------------
    def __enter__(self) -> AutoRefresh:
        if self._refresher is not None:
            raise RuntimeError("this auto_refresh() is already active")
        portal_cm = anyio.from_thread.start_blocking_portal()
        portal = portal_cm.__enter__()
        try:
            refresher = portal.call(self._start)
            self._future = portal.start_task_soon(self._background, refresher)
        except BaseException:
            portal_cm.__exit__(*sys.exc_info())
            raise
        self._portal_cm, self._portal = portal_cm, portal
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        portal_cm, portal, future = self._portal_cm, self._portal, self._future
        self._portal_cm = self._portal = self._future = None
        try:
            if future is not None:
                future.cancel()
            if portal is not None:
                portal.call(self._client._transport.aclose_current)
        finally:
            self._uninstall()
            if portal_cm is not None:
                portal_cm.__exit__(None, None, None)


class Certificates:
    """``client.certificates``: download and refresh the platform certificates."""

    __slots__ = ("_client",)

    def __init__(self, client: Client) -> None:
        self._client = client

    async def download(self, *, bootstrap: bool = True) -> list[PlatformCertificate]:
        """Download, decrypt and verify the platform certificates; trust nothing new.

        Certificates outside their validity dates are left out (and logged); an answer with
        no valid certificate, one that does not decrypt with ``apiv3_key``, or whose
        signature does not verify raises. A merchant in public-key mode gets
        ``PublicKeyOnlyError``. ``bootstrap=False``: the answer must be signed by a key
        the client already trusts.
        """
        return await _download(_unverified(self._client), bootstrap=bootstrap)

    async def refresh(self) -> list[PlatformCertificate]:
        """``download()`` and add the certificates to the keys the client trusts.

        Keys are only ever added: a failed refresh changes nothing. While ``auto_refresh``
        is active this joins its single flight.
        """
        refresher = self._client.config.resolve_serial
        if isinstance(refresher, _Refresher):
            return await refresher.refresh()
        certificates = await self.download()
        _trust(self._client.config, certificates)
        return certificates

    def download_sync(self, *, bootstrap: bool = True) -> list[PlatformCertificate]:
        """Blocking ``download()``."""
        return self._client._transport.portal.run(lambda: self.download(bootstrap=bootstrap))

    def refresh_sync(self) -> list[PlatformCertificate]:
        """Blocking ``refresh()``."""
        return self._client._transport.portal.run(self.refresh)

    def auto_refresh(
        self,
        *,
        interval: float = 12 * 3600,
        ahead: float = 24 * 3600,
        min_interval: float = 60.0,
        initial: bool = True,
    ) -> AutoRefresh:
        """Refresh automatically while ``async with`` (or ``with``) the result.

        ``initial``: download once on entry (raises only when that fails and the client
        trusts no key at all). ``interval``: seconds between background downloads.
        ``ahead``: download this long before the newest certificate expires.
        ``min_interval``: at most one download per this many seconds for answers signed by
        an unknown serial, however many arrive.
        """
        return AutoRefresh(
            self._client,
            interval=interval,
            ahead=ahead,
            min_interval=min_interval,
            initial=initial,
        )
