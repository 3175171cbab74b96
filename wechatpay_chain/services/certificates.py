"""``client.certificates``: download the platform certificates, verified; refresh them.

WeChat Pay signs its answers with a platform certificate, which rotates, or with a platform
public key (``PUB_KEY_ID_…``), which does not. What is checked before a downloaded
certificate is trusted is in ``protocol/certificates.py``; a refresh only ever adds keys.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from .._exceptions import (
    APIError,
    DecryptionError,
    InvalidArgumentError,
    PublicKeyOnlyError,
    VerificationError,
)
from ..protocol.certificates import (
    PlatformCertificate,
    check_against,
    decrypt_certificates,
    verify_download,
)
from .refresh import AutoRefresh, Refresher

if TYPE_CHECKING:
    from .._config import Config
    from .session import Session

__all__ = ["Certificates", "download", "trust", "unverified"]

logger = logging.getLogger("wechatpay_chain.certificates")

TEMPLATE = "v3/certificates"


def unverified(client: Session) -> Session:
    """A client sharing ``client``'s connections whose answers this module verifies itself."""
    if "verifier" in client.middlewares.names:
        return client.without("verifier")
    return client


async def download(client: Session, *, bootstrap: bool) -> list[PlatformCertificate]:
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
        check_against(config.platform_keys, certificates)
    except (VerificationError, DecryptionError) as exc:
        raise type(exc)(f"{exc}{where}") from None
    for reason in rejected:
        logger.warning("platform certificate left out: %s", reason)
    return certificates


def trust(config: Config, certificates: list[PlatformCertificate]) -> None:
    config.trusted_keys().add(*(cert.platform_key() for cert in certificates))


async def download_and_trust(client: Session) -> list[PlatformCertificate]:
    """One refresh: download (``client`` unverified), then trust what verified."""
    certificates = await download(client, bootstrap=True)
    trust(client.config, certificates)
    logger.info(
        "platform certificates refreshed: %s",
        ", ".join(f"{c.serial} (expires {c.expire_time:%Y-%m-%d})" for c in certificates),
    )
    return certificates


class Certificates:
    """``client.certificates``: download and refresh the platform certificates."""

    __slots__ = ("_client",)

    def __init__(self, client: Session) -> None:
        self._client = client

    async def download(self, *, bootstrap: bool = True) -> list[PlatformCertificate]:
        """Download, decrypt and verify the platform certificates; trust nothing new.

        Certificates outside their validity dates are left out (and logged); an answer with
        no valid certificate, one that does not decrypt with ``apiv3_key``, or whose
        signature does not verify raises. A merchant in public-key mode gets
        ``PublicKeyOnlyError``. ``bootstrap=False``: the answer must be signed by a key
        the client already trusts.
        """
        return await download(unverified(self._client), bootstrap=bootstrap)

    async def refresh(self) -> list[PlatformCertificate]:
        """``download()`` and add the certificates to the keys the client trusts.

        Keys are only ever added: a failed refresh changes nothing. While ``auto_refresh``
        is active this joins its single flight.
        """
        refresher = self._client.config.resolve_serial
        if isinstance(refresher, Refresher):
            return await refresher.refresh()
        return await download_and_trust(unverified(self._client))

    def download_sync(self, *, bootstrap: bool = True) -> list[PlatformCertificate]:
        """Blocking ``download()``."""
        return self._client._run_sync(lambda: self.download(bootstrap=bootstrap))

    def refresh_sync(self) -> list[PlatformCertificate]:
        """Blocking ``refresh()``."""
        return self._client._run_sync(self.refresh)

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
        if self._client.config.apiv3_key is None:
            raise InvalidArgumentError(
                "auto_refresh needs apiv3_key to decrypt downloaded platform certificates"
            )
        client = unverified(self._client)
        return AutoRefresh(
            client,
            lambda: download_and_trust(client),
            interval=interval,
            ahead=ahead,
            min_interval=min_interval,
            initial=initial,
        )
