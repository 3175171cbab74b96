"""Platform certificates against the fake server: download, refresh, rotation, many merchants."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import anyio.to_thread
import pytest

from wechatpay_chain import (
    APIError,
    Client,
    DecryptionError,
    NotificationError,
    PlatformCertificate,
    PublicKeyOnlyError,
    VerificationError,
    crypto,
)
from wechatpay_chain.testing import FakeWechatPay, Merchant, Reply
from wechatpay_chain.testing._fake import private_pem

pytestmark = pytest.mark.anyio

COUPONS = "v3/marketing/favor/users/{openid}/coupons"


async def list_coupons(client: Client) -> int:
    response = await client[COUPONS].get(openid="o-1", query={"appid": "wx1"})
    return response.status_code


def downloads(server: FakeWechatPay) -> int:
    return server.platform_certificates.downloads


def trusted(client: Client) -> dict[str, Any]:
    keys = client.config.platform_keys
    return {} if keys is None else dict(keys)


def sign_with_random_serial(server: FakeWechatPay, *, hex_serial: bool = True) -> None:
    """``GET v3/flood`` answers signed under a fresh serial each time, as an attacker would."""

    def handler(request: Any) -> Reply:
        body = b'{"ok":true}'
        headers = dict(server.sign_answer(body))
        serial = secrets.token_hex(20).upper()
        headers["Wechatpay-Serial"] = serial if hex_serial else f"EVIL-{serial}"
        headers["X-Unsigned"] = "1"  # the fake server must not sign it again
        headers["Content-Type"] = "application/json"
        return Reply(200, body=body, headers=headers)

    server.route("GET", "v3/flood", handler)


@pytest.fixture
def bare_client(wechatpay_server: FakeWechatPay) -> Iterator[Client]:
    """A client that trusts no platform key yet (it has to bootstrap)."""
    wechatpay_server.mode = "certificate"
    client: Client = wechatpay_server.client(certs=None)
    yield client
    client.close()


# --- download ----------------------------------------------------------------------------------


async def test_download_in_certificate_mode_bootstraps_from_the_answer(
    wechatpay_server: FakeWechatPay, bare_client: Client
) -> None:
    signer = wechatpay_server.certificate_signer
    assert signer.certificate is not None
    certs = await bare_client.certificates.download()
    assert [c.serial for c in certs] == [signer.serial]
    cert = certs[0]
    assert isinstance(cert, PlatformCertificate)
    assert cert.effective_time == signer.certificate.not_valid_before_utc
    assert cert.expire_time == signer.certificate.not_valid_after_utc
    assert cert.pem == signer.public
    assert bare_client.config.platform_keys is None  # download alone trusts nothing
    with pytest.raises(Exception, match="certs"):
        await list_coupons(bare_client)

    refreshed = await bare_client.certificates.refresh()
    assert [c.serial for c in refreshed] == [signer.serial]
    assert list(trusted(bare_client)) == [signer.serial]
    assert await list_coupons(bare_client) == 200
    request = wechatpay_server.requests[0]
    assert request.path == "/v3/certificates"
    assert request.headers["Authorization"].startswith("WECHATPAY2-SHA256-RSA2048 ")


@pytest.mark.parametrize("fault", ["tamper_signature", "tamper_body", "stale_timestamp"])
async def test_download_whose_signature_fails_is_rejected(
    wechatpay_server: FakeWechatPay, bare_client: Client, fault: str
) -> None:
    wechatpay_server.misbehave(fault, template="v3/certificates")
    with pytest.raises(VerificationError, match=r"Request-ID"):
        await bare_client.certificates.refresh()
    assert bare_client.config.platform_keys is None


async def test_download_signed_by_a_serial_outside_the_answer_is_rejected(
    wechatpay_server: FakeWechatPay, bare_client: Client
) -> None:
    wechatpay_server.mode = "public_key"  # signed by PUB_KEY_ID_…, which this client lacks
    with pytest.raises(VerificationError, match="neither trusted nor one of the valid"):
        await bare_client.certificates.download()


async def test_bootstrap_false_needs_an_already_trusted_key(
    wechatpay_server: FakeWechatPay, bare_client: Client, wechatpay_client: Client
) -> None:
    with pytest.raises(VerificationError, match="bootstrap=False"):
        await bare_client.certificates.download(bootstrap=False)
    certs = await wechatpay_client.certificates.download(bootstrap=False)
    assert [c.serial for c in certs] == [wechatpay_server.certificate_signer.serial]


async def test_wrong_apiv3_key_fails_closed(wechatpay_server: FakeWechatPay) -> None:
    client = wechatpay_server.client(apiv3_key="0" * 32)
    before = trusted(client)
    with pytest.raises(DecryptionError, match="AES-GCM authentication failed"):
        await client.certificates.refresh()
    assert trusted(client) == before
    assert "0" * 32 not in repr(client)
    client.close()


async def test_certificate_with_another_serial_inside_is_rejected(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    certificates = wechatpay_server.platform_certificates
    impostor = certificates.issue(publish=False)
    honest = certificates.answer

    def relabel(request: Any) -> Any:
        answer = honest(request)
        answer["data"][0]["serial_no"] = impostor.serial
        return answer

    wechatpay_server.route("GET", "v3/certificates", relabel)
    with pytest.raises(VerificationError, match="has serial"):
        await wechatpay_client.certificates.download()


async def test_public_key_only_merchant_gets_a_clear_error(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    wechatpay_server.platform_certificates.mode = "public_key_only"
    before = trusted(wechatpay_client)
    with pytest.raises(PublicKeyOnlyError, match="public-key mode") as caught:
        await wechatpay_client.certificates.refresh()
    assert isinstance(caught.value, APIError)
    assert caught.value.code == "RESOURCE_NOT_EXISTS"
    assert caught.value.status_code == 404
    assert trusted(wechatpay_client) == before


async def test_auto_refresh_in_public_key_mode_needs_no_refresh(
    wechatpay_server: FakeWechatPay,
) -> None:
    wechatpay_server.platform_certificates.mode = "public_key_only"
    signer = wechatpay_server.public_key_signer
    client = wechatpay_server.client(certs={signer.serial: signer.public})
    async with client.certificates.auto_refresh(interval=0.05, min_interval=0.01) as refresh:
        assert refresh.public_key_only
        for _ in range(3):
            assert await list_coupons(client) == 200
            await anyio.sleep(0.05)
    assert downloads(wechatpay_server) == 1  # the initial one only: the background stopped
    client.close()


# --- validity dates ---------------------------------------------------------------------------


async def test_expired_certificate_is_rejected(
    wechatpay_server: FakeWechatPay, bare_client: Client
) -> None:
    certificates = wechatpay_server.platform_certificates
    now = datetime.now(timezone.utc)
    expired = certificates.issue(
        not_before=now - timedelta(days=400), not_after=now - timedelta(days=1), publish=False
    )
    certificates.published = [expired]
    wechatpay_server.certificate_signer = expired
    with pytest.raises(VerificationError, match=f"{expired.serial} expired at"):
        await bare_client.certificates.refresh()
    assert bare_client.config.platform_keys is None

    valid = certificates.issue()
    certificates.published = [expired, valid]
    wechatpay_server.certificate_signer = valid
    certs = await bare_client.certificates.refresh()
    assert [c.serial for c in certs] == [valid.serial]
    assert list(trusted(bare_client)) == [valid.serial]


async def test_answer_signed_by_an_expired_trusted_certificate_is_rejected(
    wechatpay_server: FakeWechatPay,
) -> None:
    now = datetime.now(timezone.utc)
    expired = wechatpay_server.platform_certificates.issue(
        not_before=now - timedelta(days=400), not_after=now - timedelta(days=1), publish=False
    )
    wechatpay_server.certificate_signer = expired
    wechatpay_server.mode = "certificate"
    client = wechatpay_server.client(certs={expired.serial: expired.public})
    with pytest.raises(VerificationError, match="expired"):
        await list_coupons(client)
    client.close()


# --- automatic refresh ---------------------------------------------------------------------


async def test_rotation_refreshes_once_under_100_concurrent_requests(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    async with wechatpay_client.certificates.auto_refresh():
        baseline = downloads(wechatpay_server)
        assert baseline == 1  # the initial download on entry
        new = wechatpay_server.rotate_certificate()
        assert new.serial not in trusted(wechatpay_client)
        statuses: list[int] = []

        async def one() -> None:
            statuses.append(await list_coupons(wechatpay_client))

        async with anyio.create_task_group() as group:
            for _ in range(100):
                group.start_soon(one)
        assert statuses == [200] * 100
        assert downloads(wechatpay_server) == baseline + 1
        assert new.serial in trusted(wechatpay_client)
        served = [r for r in wechatpay_server.requests if r.path.endswith("/coupons")]
        assert len(served) == 100


async def test_rotation_refreshes_once_across_event_loops(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    """The sync verbs run on the client's own I/O thread: a second event loop."""
    node = wechatpay_client[COUPONS]
    node.get_sync(openid="o-1", query={"appid": "wx1"})  # start the sync bridge
    async with wechatpay_client.certificates.auto_refresh():
        baseline = downloads(wechatpay_server)
        new = wechatpay_server.rotate_certificate()
        statuses: list[int] = []

        def blocking() -> None:
            statuses.append(node.get_sync(openid="o-1", query={"appid": "wx1"}).status_code)

        async def one() -> None:
            statuses.append(await list_coupons(wechatpay_client))

        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(anyio.to_thread.run_sync, blocking)
                group.start_soon(one)
        assert statuses == [200] * 20
        assert downloads(wechatpay_server) == baseline + 1
        assert new.serial in trusted(wechatpay_client)


async def test_without_auto_refresh_an_unknown_serial_fails_and_downloads_nothing(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    wechatpay_server.rotate_certificate()
    with pytest.raises(VerificationError, match="which certs does not hold"):
        await list_coupons(wechatpay_client)
    assert downloads(wechatpay_server) == 0


async def test_failed_refresh_keeps_the_old_keys(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    async with wechatpay_client.certificates.auto_refresh(min_interval=0):
        before = trusted(wechatpay_client)
        wechatpay_server.platform_certificates.mode = "failing"
        new = wechatpay_server.rotate_certificate()
        with pytest.raises(VerificationError, match="which certs does not hold"):
            await list_coupons(wechatpay_client)
        assert trusted(wechatpay_client) == before
        with pytest.raises(APIError, match="SYSTEM_ERROR"):
            await wechatpay_client.certificates.refresh()
        assert trusted(wechatpay_client) == before

        wechatpay_server.route("GET", "v3/certificates", lambda request: {"data": []})
        with pytest.raises(VerificationError, match="no valid certificate"):
            await wechatpay_client.certificates.refresh()
        assert trusted(wechatpay_client) == before

        wechatpay_server.mode = "public_key"  # the old keys still verify what they signed
        assert await list_coupons(wechatpay_client) == 200
        assert new.serial not in trusted(wechatpay_client)


async def test_flood_of_unknown_serials_is_rate_limited(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    sign_with_random_serial(wechatpay_server)
    async with wechatpay_client.certificates.auto_refresh(min_interval=60):
        baseline = downloads(wechatpay_server)
        failures: list[Exception] = []

        async def one() -> None:
            try:
                await wechatpay_client.v3.flood.get()
            except VerificationError as exc:
                failures.append(exc)

        async with anyio.create_task_group() as group:
            for _ in range(50):
                group.start_soon(one)
        for _ in range(20):
            await one()
        assert len(failures) == 70
        assert downloads(wechatpay_server) == baseline + 1
        assert len(trusted(wechatpay_client)) == 2  # nothing of the attacker's was added


async def test_serials_that_cannot_be_certificates_trigger_no_download(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    sign_with_random_serial(wechatpay_server, hex_serial=False)
    async with wechatpay_client.certificates.auto_refresh(min_interval=0):
        baseline = downloads(wechatpay_server)
        for _ in range(5):
            with pytest.raises(VerificationError):
                await wechatpay_client.v3.flood.get()
        assert downloads(wechatpay_server) == baseline


async def test_background_refresh_fetches_the_successor_before_expiry(
    wechatpay_server: FakeWechatPay,
) -> None:
    expiring = wechatpay_server.rotate_certificate(days=1)
    assert expiring.certificate is not None
    client = wechatpay_server.client()
    left = expiring.certificate.not_valid_after_utc - datetime.now(timezone.utc)
    successor = wechatpay_server.platform_certificates.issue()  # published, not used yet
    refresher = client.certificates.auto_refresh(
        initial=False, ahead=left.total_seconds() - 0.3, min_interval=0.01
    )
    async with refresher:
        with anyio.fail_after(5):
            while successor.serial not in trusted(client):
                await anyio.sleep(0.05)
        assert downloads(wechatpay_server) == 1
        wechatpay_server.certificate_signer = successor  # WeChat Pay switches
        assert await list_coupons(client) == 200
        await anyio.sleep(0.2)
        assert downloads(wechatpay_server) == 1  # the successor is far from expiry
    assert client.config.resolve_serial is None  # the hook is gone once exited
    client.close()


async def test_auto_refresh_fails_on_entry_when_nothing_is_trusted(
    wechatpay_server: FakeWechatPay, bare_client: Client
) -> None:
    wechatpay_server.platform_certificates.mode = "failing"
    with pytest.raises(APIError, match="SYSTEM_ERROR"):
        async with bare_client.certificates.auto_refresh():
            pass  # pragma: no cover - not reached
    assert bare_client.config.resolve_serial is None


async def test_failed_initial_download_keeps_the_keys_and_retries_soon(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    certificates = wechatpay_server.platform_certificates
    certificates.mode = "failing"
    before = trusted(wechatpay_client)
    async with wechatpay_client.certificates.auto_refresh(min_interval=0.01):
        assert trusted(wechatpay_client) == before
        assert await list_coupons(wechatpay_client) == 200
        certificates.mode = "certificate"
        published = certificates.issue()
        with anyio.fail_after(5):  # the first retry comes at once, not in 12 hours
            while published.serial not in trusted(wechatpay_client):
                await anyio.sleep(0.05)
    assert downloads(wechatpay_server) == 2
    assert set(before) < set(trusted(wechatpay_client))


async def test_auto_refresh_bootstraps_a_client_without_certs(
    wechatpay_server: FakeWechatPay, bare_client: Client
) -> None:
    async with bare_client.certificates.auto_refresh():
        assert list(trusted(bare_client)) == [wechatpay_server.certificate_signer.serial]
        assert await list_coupons(bare_client) == 200


def test_sync_auto_refresh_serves_the_sync_verbs(wechatpay_server: FakeWechatPay) -> None:
    client = wechatpay_server.client()
    with client.certificates.auto_refresh():
        assert downloads(wechatpay_server) == 1
        new = wechatpay_server.rotate_certificate()
        response = client[COUPONS].get_sync(openid="o-1", query={"appid": "wx1"})
        assert response.status_code == 200
        assert new.serial in trusted(client)
        assert downloads(wechatpay_server) == 2
    assert client.config.resolve_serial is None
    certs = client.certificates.download_sync()
    assert new.serial in [c.serial for c in certs]
    client.close()


# --- many merchants ----------------------------------------------------------------------------


async def test_merchant_clients_share_one_connection_pool(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    other = Merchant.generate("1900000002")
    wechatpay_server.merchants[other.mchid] = other
    merchant = wechatpay_client.for_merchant(
        mchid=other.mchid,
        serial=other.serial,
        private_key=private_pem(other.private_key),
        certs=wechatpay_server.certs(),
        apiv3_key=other.apiv3_key,
    )
    assert merchant.config is not wechatpay_client.config
    assert merchant._connections is wechatpay_client._connections
    assert await list_coupons(wechatpay_client) == 200
    assert await list_coupons(merchant) == 200
    await merchant.aclose()  # leaves the shared pool open
    assert await list_coupons(wechatpay_client) == 200
    assert [r.mchid for r in wechatpay_server.requests] == [
        wechatpay_server.merchant.mchid,
        other.mchid,
        wechatpay_server.merchant.mchid,
    ]
    assert wechatpay_server.connections == 1
    # each merchant decrypts the certificates with its own APIv3 key
    certs = await merchant.certificates.download()
    assert [c.serial for c in certs] == [wechatpay_server.certificate_signer.serial]
    del wechatpay_server.merchants[other.mchid]


async def test_merchant_clients_present_their_own_merchant_certificate(
    wechatpay_tls_server: FakeWechatPay, wechatpay_tls_client: Client
) -> None:
    """One plain pool for everyone, but mutual TLS pools per merchant certificate."""
    server = wechatpay_tls_server
    assert server.ca is not None
    other = Merchant.generate("1900000003")
    server.merchants[other.mchid] = other
    key = private_pem(other.private_key)
    merchant = wechatpay_tls_client.for_merchant(
        mchid=other.mchid,
        serial=other.serial,
        private_key=key,
        certs=server.certs(),
        secret=other.secret,
        merchant_cert=server.ca.client_pem(other.mchid, other.private_key),
        merchant_key=key,
    )
    send = "v2/mmpaymkttransfers/send_coupon"
    pairs = ((wechatpay_tls_client, server.merchant.mchid), (merchant, other.mchid))
    try:
        for client, mchid in pairs:
            answer = await client[send].post(
                security=True,
                xml={
                    "coupon_stock_id": "1717",
                    "openid_count": 1,
                    "partner_trade_no": f"{mchid}20260101",
                    "openid": "o-1",
                    "appid": "wxd678efh567hg6787",
                    "mch_id": mchid,
                },
            )
            assert b"<return_code><![CDATA[SUCCESS]]>" in answer.content
            assert server.requests[-1].tls_client_cert is True
        assert await list_coupons(merchant) == 200
        assert await list_coupons(wechatpay_tls_client) == 200
    finally:
        del server.merchants[other.mchid]


async def test_merchant_clients_inherit_middlewares_but_sign_as_themselves(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    seen: list[str] = []

    class Recorder:
        async def __call__(self, request: Any, call_next: Any) -> Any:
            seen.append(request.template)
            return await call_next(request)

    kms_calls: list[bytes] = []

    async def parent_kms(message: bytes) -> str:
        kms_calls.append(message)
        return crypto.sign_sha256_rsa(message, wechatpay_server.merchant.private_key)

    parent = wechatpay_client.insert("recorder", Recorder()).with_signer(parent_kms)
    other = Merchant.generate("1900000004")
    wechatpay_server.merchants[other.mchid] = other
    try:
        merchant = parent.for_merchant(
            mchid=other.mchid,
            serial=other.serial,
            private_key=private_pem(other.private_key),
            certs=wechatpay_server.certs(),
        )
        assert merchant.middlewares.names == parent.middlewares.names
        assert await list_coupons(merchant) == 200  # signed with its own key, not the KMS's
        assert wechatpay_server.requests[-1].mchid == other.mchid
        assert len(seen) == 1
        assert kms_calls == []
        assert await list_coupons(parent) == 200  # the parent still signs through its KMS
        assert len(kms_calls) == 1 and len(seen) == 2
    finally:
        del wechatpay_server.merchants[other.mchid]


async def test_notification_from_a_rotated_certificate_refreshes_when_auto_refresh_is_on(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    from wechatpay_chain.testing._notify import build_notification

    wechatpay_server.mode = "certificate"
    handled: list[str] = []

    async def handler(notification: Any) -> None:
        handled.append(notification.resource["out_trade_no"])

    resource = {"out_trade_no": "T-1", "trade_state": "SUCCESS"}
    async with wechatpay_client.certificates.auto_refresh():
        wechatpay_server.rotate_certificate()
        headers, body = build_notification(wechatpay_server, "TRANSACTION.SUCCESS", resource)
        with pytest.raises(NotificationError, match="unknown_serial"):
            wechatpay_client.notifications.parse(headers, body)  # sync: no refresh
        answer = await wechatpay_client.notifications.handle(headers, body, handler)
    assert answer.status in (200, 204)
    assert handled == ["T-1"]


async def test_notification_from_an_unknown_serial_is_refused_without_auto_refresh(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    from wechatpay_chain.testing._notify import build_notification

    wechatpay_server.mode = "certificate"
    wechatpay_server.rotate_certificate()
    headers, body = build_notification(wechatpay_server, "TRANSACTION.SUCCESS", {"a": "b"})

    async def handler(notification: Any) -> None:
        raise AssertionError("must not run")

    answer = await wechatpay_client.notifications.handle(headers, body, handler)
    assert answer.status == 401
    assert downloads(wechatpay_server) == 0
