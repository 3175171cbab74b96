"""Notification verification and decryption: APIv3, APIv2 payments and refunds, answers, dedup.

The notifications come from the fake server's builders (signed and encrypted as WeChat Pay
does); tests over real HTTP against framework apps are in test_notifications_frameworks.py.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wechatpay_chain import (
    Client,
    InvalidArgumentError,
    NotificationError,
    Transformer,
    VerificationError,
    crypto,
)
from wechatpay_chain.notifications import (
    ACK_V2,
    ACK_V3,
    Answer,
    Claim,
    Kind,
    MemoryDeduplicator,
    Notification,
    Notifications,
    V2PayNotification,
    V2RefundNotification,
)
from wechatpay_chain.protocol import v2 as _v2
from wechatpay_chain.protocol import v3 as _v3
from wechatpay_chain.testing import FakeWechatPay
from wechatpay_chain.testing._notify import build_notification, build_v2_notification

pytest_anyio = pytest.mark.anyio

RESOURCE = {
    "mchid": "1900000001",
    "out_trade_no": "1217752501201407033233368018",
    "transaction_id": "1217752501201407033233368018",
    "trade_state": "SUCCESS",
    "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
    "amount": {"total": 100, "currency": "CNY"},
}


@pytest.fixture(scope="module")
def fake() -> FakeWechatPay:
    # Only its keys and builders are needed here: it does not have to listen.
    return FakeWechatPay()


@pytest.fixture(scope="module")
def client(fake: FakeWechatPay) -> Iterator[Client]:
    client: Client = fake.client()
    yield client
    client.close()


def notify(fake: FakeWechatPay, **options: Any) -> tuple[dict[str, str], bytes]:
    return build_notification(fake, "TRANSACTION.SUCCESS", RESOURCE, **options)


def resign(fake: FakeWechatPay, body: bytes, **headers: str) -> dict[str, str]:
    """Headers correctly signing ``body``, as if WeChat Pay had sent it."""
    timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
    signature = crypto.sign_sha256_rsa(
        _v3.response_message(timestamp, nonce, body), fake.signer.private_key
    )
    return {
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": signature,
        "Wechatpay-Serial": fake.signer.serial,
        **headers,
    }


def reason_of(call: Any) -> str:
    with pytest.raises(NotificationError) as info:
        call()
    assert isinstance(info.value, VerificationError)
    return info.value.reason


# --- APIv3 --------------------------------------------------------------------------------
def test_v3_notification_is_verified_and_decrypted(fake: FakeWechatPay, client: Client) -> None:
    headers, body = notify(fake, id="EV-2018022511223320873")
    notification = client.notifications.parse(headers, body)
    assert isinstance(notification, Notification)
    assert notification.id == "EV-2018022511223320873"
    assert notification.event_type == "TRANSACTION.SUCCESS"
    assert notification.resource_type == "encrypt-resource"
    assert notification.summary == "支付成功"
    assert notification.original_type == "transaction"
    assert notification.resource == RESOURCE
    assert notification.created_at.utcoffset() is not None
    assert abs(notification.created_at.timestamp() - time.time()) < 60
    assert notification.dedup_key == "v3:EV-2018022511223320873"


def test_certificate_signed_notification_verifies(fake: FakeWechatPay, client: Client) -> None:
    fake.mode = "certificate"
    try:
        headers, body = notify(fake)
    finally:
        fake.mode = "public_key"
    assert headers["Wechatpay-Serial"] == fake.certificate_signer.serial
    assert client.notifications.parse(headers, body).resource == RESOURCE


@pytest.mark.parametrize("case", ["lower", "upper", "pairs", "bytes"])
def test_header_names_are_case_insensitive(fake: FakeWechatPay, client: Client, case: str) -> None:
    headers, body = notify(fake)
    given: Any
    if case == "lower":
        given = {k.lower(): v for k, v in headers.items()}
    elif case == "upper":
        given = {k.upper(): v for k, v in headers.items()}
    elif case == "pairs":
        given = [(k.lower(), v) for k, v in headers.items()]
    else:
        given = [(k.encode(), v.encode()) for k, v in headers.items()]
    assert client.notifications.parse(given, body).resource == RESOURCE


def test_a_header_given_twice_with_different_values_is_refused(
    fake: FakeWechatPay, client: Client
) -> None:
    headers, body = notify(fake)
    pairs = [*headers.items(), ("wechatpay-serial", "OTHER")]
    assert reason_of(lambda: client.notifications.parse(pairs, body)) == "malformed"


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("tamper_body", "bad_signature"),
        ("tamper_signature", "bad_signature"),
        ("no_signature", "bad_signature"),
        ("unknown_serial", "unknown_serial"),
        ("stale_timestamp", "stale"),
        ("wrong_key", "bad_ciphertext"),
    ],
)
def test_forged_or_broken_notifications_raise_with_a_reason(
    fake: FakeWechatPay, client: Client, fault: str, reason: str
) -> None:
    headers, body = notify(fake, fault=fault)
    assert reason_of(lambda: client.notifications.parse(headers, body)) == reason


def test_skew_limit_uses_the_injected_clock(fake: FakeWechatPay, client: Client) -> None:
    headers, body = notify(fake)
    sent = int(headers["Wechatpay-Timestamp"])
    parse = client.notifications.parse
    assert parse(headers, body, now=sent + 300).resource == RESOURCE
    assert parse(headers, body, now=sent - 300).resource == RESOURCE
    assert reason_of(lambda: parse(headers, body, now=sent + 301)) == "stale"
    assert reason_of(lambda: parse(headers, body, now=sent - 301)) == "stale"
    strict = Notifications(client.config, max_skew=10)
    assert reason_of(lambda: strict.parse(headers, body, now=sent + 11)) == "stale"


def test_a_probe_signature_is_rejected(fake: FakeWechatPay, client: Client) -> None:
    # WeChat Pay checks that merchants verify by sending signatures that cannot verify.
    headers, body = notify(fake)
    headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]
    assert reason_of(lambda: client.notifications.parse(headers, body)) == "bad_signature"


@pytest.mark.parametrize("scheme", ["WECHATPAY2-SM2-WITH-SM3", "wechatpay2-sha256-rsa2048"])
def test_other_signature_types_are_unsupported(
    fake: FakeWechatPay, client: Client, scheme: str
) -> None:
    headers, body = notify(fake)
    headers["Wechatpay-Signature-Type"] = scheme
    assert reason_of(lambda: client.notifications.parse(headers, body)) == "unsupported"


def test_a_re_serialised_body_does_not_verify(fake: FakeWechatPay, client: Client) -> None:
    headers, body = notify(fake)
    pretty = json.dumps(json.loads(body), indent=1).encode()
    assert reason_of(lambda: client.notifications.parse(headers, pretty)) == "bad_signature"


@pytest.mark.parametrize("body", ["text", {"id": "x"}, None])
def test_a_body_that_is_not_bytes_is_a_programming_error(client: Client, body: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="raw request body as bytes"):
        client.notifications.parse({}, body)


def _sealed(fake: FakeWechatPay, plaintext: str, algorithm: str = "AEAD_AES_256_GCM") -> bytes:
    nonce = "abcdefghijkl"
    document = {
        "id": "EV-1",
        "create_time": "2015-05-20T13:29:35+08:00",
        "resource_type": "encrypt-resource",
        "event_type": "TRANSACTION.SUCCESS",
        "summary": "支付成功",
        "resource": {
            "original_type": "transaction",
            "algorithm": algorithm,
            "ciphertext": crypto.aes_gcm_encrypt(
                plaintext, fake.merchant.apiv3_key, nonce, "transaction"
            ),
            "associated_data": "transaction",
            "nonce": nonce,
        },
    }
    return json.dumps(document, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "malformed"),
        (b"[1, 2]", "malformed"),
        (b'{"id":"EV-1"}', "malformed"),
        (
            b'{"id":"a","create_time":"t","event_type":"e","resource_type":"r","resource":[]}',
            "malformed",
        ),
        (None, "unsupported"),  # another algorithm, filled in below
        (None, "malformed"),  # decrypts, but not to a JSON object
    ],
)
def test_signed_but_unusable_bodies_raise(
    fake: FakeWechatPay, client: Client, body: bytes | None, reason: str
) -> None:
    if body is None:
        body = (
            _sealed(fake, "{}", algorithm="AEAD_SM4_GCM")
            if reason == "unsupported"
            else _sealed(fake, '"just a string"')
        )
    headers = resign(fake, body, **{"Wechatpay-Signature-Type": _v3.AUTH_SCHEME})
    assert reason_of(lambda: client.notifications.parse(headers, body)) == reason


def test_tampered_associated_data_fails_decryption(fake: FakeWechatPay, client: Client) -> None:
    body = _sealed(fake, json.dumps(RESOURCE)).replace(
        b'"associated_data":"transaction"', b'"associated_data":"refund"'
    )
    headers = resign(fake, body)
    assert reason_of(lambda: client.notifications.parse(headers, body)) == "bad_ciphertext"


def test_nothing_decrypted_appears_in_reprs_or_errors(fake: FakeWechatPay, client: Client) -> None:
    marker = "SECRET-" + secrets.token_hex(4)
    headers, body = build_notification(fake, "TRANSACTION.SUCCESS", {"openid": marker})
    notification = client.notifications.parse(headers, body)
    assert notification.resource["openid"] == marker
    assert marker not in repr(notification) and marker not in str(notification)
    key = fake.merchant.apiv3_key
    for fault in ("tamper_body", "wrong_key", "stale_timestamp", "unknown_serial"):
        headers, body = build_notification(
            fake, "TRANSACTION.SUCCESS", {"openid": marker}, fault=fault
        )
        with pytest.raises(NotificationError) as info:
            client.notifications.parse(headers, body)
        assert marker not in str(info.value) and key not in str(info.value)
    assert key not in repr(client.notifications)


def test_missing_keys_are_configuration_errors(fake: FakeWechatPay) -> None:
    options = fake.client_options()
    headers, body = notify(fake)
    no_key = Client(**{**options, "apiv3_key": None})
    with pytest.raises(InvalidArgumentError, match="apiv3_key is required"):
        no_key.notifications.parse(headers, body)
    no_certs = Client(**{**options, "certs": None})
    with pytest.raises(InvalidArgumentError, match="certs is required"):
        no_certs.notifications.parse(headers, body)
    no_secret = Client(**{**options, "secret": None})
    with pytest.raises(InvalidArgumentError, match="secret"):
        no_secret.notifications.parse_v2_pay(b"<xml></xml>")
    with pytest.raises(InvalidArgumentError, match="kind must be one of"):
        no_secret.notifications.require("v4")  # type: ignore[arg-type]


def test_client_notifications_is_made_once(client: Client) -> None:
    assert client.notifications is client.notifications


# --- APIv2 payments -----------------------------------------------------------------------
@pytest.mark.parametrize("sign_type", ["MD5", "HMAC-SHA256"])
def test_v2_pay_notification_sign_is_verified(
    fake: FakeWechatPay, client: Client, sign_type: str
) -> None:
    _, body = build_v2_notification(
        fake, {"out_trade_no": "T-1", "total_fee": 101}, sign_type=sign_type
    )
    notification = client.notifications.parse_v2_pay(body)
    assert isinstance(notification, V2PayNotification)
    assert notification.out_trade_no == "T-1"
    assert notification.fields["total_fee"] == "101"
    assert notification.succeeded
    assert notification.dedup_key == "v2_pay:" + notification.transaction_id
    assert "T-1" not in repr(notification)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("tamper_body", "bad_signature"),
        ("tamper_signature", "bad_signature"),
        ("wrong_key", "bad_signature"),
    ],
)
def test_v2_pay_notification_with_a_bad_sign_raises(
    fake: FakeWechatPay, client: Client, fault: str, reason: str
) -> None:
    _, body = build_v2_notification(fake, {"total_fee": 100}, fault=fault)
    assert reason_of(lambda: client.notifications.parse_v2_pay(body)) == reason


def _signed_xml(fields: dict[str, str], secret: str, sign_type: str = "MD5") -> bytes:
    return Transformer.to_xml(
        {**fields, "sign": _v2.sign_fields(fields, secret, sign_type)}
    ).encode()


def test_v2_pay_notification_edge_cases(fake: FakeWechatPay, client: Client) -> None:
    secret = fake.merchant.secret
    parse = client.notifications.parse_v2_pay
    base = {"return_code": "SUCCESS", "transaction_id": "42", "out_trade_no": "T"}
    unsigned = Transformer.to_xml(base).encode()
    assert reason_of(lambda: parse(unsigned)) == "bad_signature"
    odd_type = _signed_xml({**base, "sign_type": "SHA1"}, secret)
    assert reason_of(lambda: parse(odd_type)) == "unsupported"
    no_transaction = _signed_xml({"return_code": "SUCCESS", "out_trade_no": "T"}, secret)
    assert reason_of(lambda: parse(no_transaction)) == "malformed"
    # A repeated field could smuggle a second value past the sign.
    doubled = _signed_xml(base, secret).replace(b"</xml>", b"<out_trade_no>X</out_trade_no></xml>")
    assert reason_of(lambda: parse(doubled)) == "bad_signature"
    assert reason_of(lambda: parse(b"<!DOCTYPE x [<!ENTITY a 'b'>]><xml/>")) == "malformed"
    assert reason_of(lambda: parse(b"<html><body>502</body></html>")) == "malformed"


def test_shared_pay_notification_fixture_parses(
    fake: FakeWechatPay, client: Client, fixtures_dir: Path
) -> None:
    raw = (fixtures_dir / "paysuccess.notification.sample.xml").read_bytes()
    fields = Transformer.to_dict(raw)
    # Signed with a key we do not have: it must not be trusted as is.
    assert reason_of(lambda: client.notifications.parse_v2_pay(raw)) == "bad_signature"
    resigned = raw.replace(
        fields["sign"].encode(), _v2.sign_fields(fields, fake.merchant.secret).encode()
    )
    notification = client.notifications.parse_v2_pay(resigned)
    assert notification.transaction_id == "1004400740201409030005092168"
    assert notification.fields["attach"] == "支付测试"
    assert notification.fields["total_fee"] == "1"
    assert {k: v for k, v in notification.fields.items() if k != "sign"} == {
        k: v for k, v in fields.items() if k != "sign"
    }


# --- APIv2 refunds ------------------------------------------------------------------------
def test_v2_refund_req_info_round_trip(fake: FakeWechatPay, client: Client) -> None:
    sent = {"out_refund_no": "R-1", "refund_fee": "3960", "refund_recv_accout": "支付用户零钱"}
    _, body = build_v2_notification(fake, sent, refund=True)
    notification = client.notifications.parse_v2_refund(body)
    assert isinstance(notification, V2RefundNotification)
    assert notification.out_refund_no == "R-1"
    assert notification.refund_status == "SUCCESS"
    assert {k: notification.info[k] for k in sent} == sent
    assert "req_info" not in notification.envelope
    assert notification.envelope["mch_id"] == fake.merchant.mchid
    assert notification.dedup_key == f"v2_refund:{notification.refund_id}:SUCCESS"
    assert "R-1" not in repr(notification)


def test_shared_refund_req_info_fixture_parses(
    fake: FakeWechatPay, client: Client, fixtures_dir: Path
) -> None:
    plaintext = (fixtures_dir / "refund.notification.req_info.sample.xml").read_text("utf-8")
    envelope = {
        "return_code": "SUCCESS",
        "appid": "wx2421b1c4370ec43b",
        "mch_id": "10000100",
        "nonce_str": "TeqClE3i0mvn3DrK",
        "req_info": crypto.aes_ecb_encrypt(plaintext, crypto.md5(fake.merchant.secret)),
    }
    notification = client.notifications.parse_v2_refund(Transformer.to_xml(envelope).encode())
    assert notification.info == Transformer.to_dict(plaintext)
    assert notification.refund_id == "50000408942018111907145868882"
    assert notification.info["refund_recv_accout"] == "支付用户零钱"


def test_v2_refund_edge_cases(fake: FakeWechatPay, client: Client) -> None:
    parse = client.notifications.parse_v2_refund
    _, wrong = build_v2_notification(fake, {}, refund=True, fault="wrong_key")
    assert reason_of(lambda: parse(wrong)) == "bad_ciphertext"
    failed = Transformer.to_xml({"return_code": "FAIL", "return_msg": "x"}).encode()
    assert reason_of(lambda: parse(failed)) == "malformed"
    empty = Transformer.to_xml({"return_code": "SUCCESS"}).encode()
    assert reason_of(lambda: parse(empty)) == "malformed"
    garbage = Transformer.to_xml({"return_code": "SUCCESS", "req_info": "!!notbase64"}).encode()
    assert reason_of(lambda: parse(garbage)) == "bad_ciphertext"
    key = crypto.md5(fake.merchant.secret)
    not_refund = crypto.aes_ecb_encrypt("<root><a>1</a></root>", key)
    lacking = Transformer.to_xml({"return_code": "SUCCESS", "req_info": not_refund}).encode()
    assert reason_of(lambda: parse(lacking)) == "bad_ciphertext"


# --- answers ------------------------------------------------------------------------------
def test_answers_are_what_wechat_pay_expects() -> None:
    v3 = Answer.ack("v3")
    assert (v3.status, json.loads(v3.body)) == (200, {"code": "SUCCESS", "message": "OK"})
    assert v3.body == ACK_V3 and v3.headers["Content-Type"].startswith("application/json")
    v2 = Answer.ack("v2_pay")
    assert v2.status == 200 and v2.body == ACK_V2
    assert Transformer.to_dict(v2.body) == {"return_code": "SUCCESS", "return_msg": "OK"}
    fail = Answer.reject("v3", "bad_signature")
    assert (fail.status, json.loads(fail.body)) == (
        401,
        {"code": "FAIL", "message": "bad_signature"},
    )
    fail_v2 = Answer.reject("v2_refund", "bad_ciphertext")
    assert fail_v2.status == 400 and not fail_v2.ok
    assert Transformer.to_dict(fail_v2.body)["return_code"] == "FAIL"
    assert Answer.reject("v3", "duplicate").status == 409
    assert Answer.reject("v3", "whatever", 503).body == b'{"code":"FAIL","message":"rejected"}'
    with pytest.raises(InvalidArgumentError):
        Answer.reject("v3", "stale", 200)


# --- de-duplication -----------------------------------------------------------------------


@pytest_anyio
async def test_memory_deduplicator_claims_and_forgets_beyond_its_bound() -> None:
    store = MemoryDeduplicator(maxsize=3)
    assert await store.claim("a") == "new"
    assert await store.claim("a") == "in_progress"
    await store.finish("a", handled=False)
    assert await store.claim("a") == "new"
    await store.finish("a", handled=True)
    assert await store.claim("a") == "done"
    for key in ("b", "c", "d"):
        assert await store.claim(key) == "new"
        await store.finish(key, handled=True)
    assert store.size == 3
    assert "a" not in store and "d" in store
    assert await store.claim("a") == "new"
    with pytest.raises(InvalidArgumentError):
        MemoryDeduplicator(maxsize=0)


class TableStore:
    """A Deduplicator as a user would back it with a database table."""

    def __init__(self) -> None:
        self.rows: dict[str, Claim] = {}
        self.calls: list[tuple[str, str, bool | None]] = []

    async def claim(self, key: str) -> Claim:
        self.calls.append(("claim", key, None))
        if key in self.rows:
            return self.rows[key]
        self.rows[key] = "in_progress"  # INSERT ... ON CONFLICT DO NOTHING
        return "new"

    async def finish(self, key: str, *, handled: bool) -> None:
        self.calls.append(("finish", key, handled))
        if handled:
            self.rows[key] = "done"
        else:
            del self.rows[key]


@pytest_anyio
async def test_a_user_store_is_claimed_then_finished(fake: FakeWechatPay, client: Client) -> None:
    store = TableStore()
    seen: list[str] = []

    async def handler(notification: Notification) -> None:
        seen.append(notification.id)

    headers, body = notify(fake, id="EV-table")
    assert await client.notifications.handle(headers, body, handler, dedup=store) == Answer.ack()
    assert await client.notifications.handle(headers, body, handler, dedup=store) == Answer.ack()
    assert seen == ["EV-table"]
    assert store.calls == [
        ("claim", "v3:EV-table", None),
        ("finish", "v3:EV-table", True),
        ("claim", "v3:EV-table", None),
    ]


@pytest_anyio
async def test_handle_runs_the_handler_once_and_acknowledges_duplicates(
    fake: FakeWechatPay, client: Client
) -> None:
    seen: list[Notification] = []

    async def handler(notification: Notification) -> None:
        seen.append(notification)

    headers, body = notify(fake)
    notifications = Notifications(client.config)
    first = await notifications.handle(headers, body, handler)
    again = await notifications.handle(headers, body, handler)
    assert first == again == Answer.ack("v3")
    assert len(seen) == 1
    off = await notifications.handle(headers, body, handler, dedup=False)
    assert off.ok and len(seen) == 2


@pytest_anyio
async def test_handle_answers_a_rejection_and_logs_its_reason(
    fake: FakeWechatPay, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(notification: Notification) -> None:
        raise AssertionError("must not run")

    headers, body = notify(fake, fault="stale_timestamp")
    answer = await client.notifications.handle(headers, body, handler)
    assert answer.status == 401
    assert json.loads(answer.body) == {"code": "FAIL", "message": "stale"}
    assert any("stale" in r.getMessage() for r in caplog.records)


@pytest_anyio
async def test_a_failing_handler_releases_its_claim(fake: FakeWechatPay, client: Client) -> None:
    store = MemoryDeduplicator()
    runs: list[str] = []

    async def flaky(notification: Notification) -> None:
        runs.append(notification.id)
        if len(runs) == 1:
            raise RuntimeError("database down")

    headers, body = notify(fake)
    with pytest.raises(RuntimeError, match="database down"):
        await client.notifications.handle(headers, body, flaky, dedup=store)
    assert await client.notifications.handle(headers, body, flaky, dedup=store) == Answer.ack()
    assert len(runs) == 2
    assert await client.notifications.handle(headers, body, flaky, dedup=store) == Answer.ack()
    assert len(runs) == 2


@pytest_anyio
async def test_a_notification_being_handled_is_refused_for_now(
    fake: FakeWechatPay, client: Client
) -> None:
    store = MemoryDeduplicator()
    headers, body = notify(fake)
    key = client.notifications.parse(headers, body).dedup_key
    assert await store.claim(key) == "new"  # as if another request were handling it

    async def handler(notification: Notification) -> None:
        raise AssertionError("must not run")

    answer = await client.notifications.handle(headers, body, handler, dedup=store)
    assert answer.status == 409
    assert json.loads(answer.body)["message"] == "duplicate"


@pytest_anyio
async def test_handle_v2_kinds_share_the_flow(fake: FakeWechatPay, client: Client) -> None:
    seen: list[Any] = []

    async def handler(notification: Any) -> None:
        seen.append(notification)

    _, pay = build_v2_notification(fake, {"total_fee": 5})
    _, refund = build_v2_notification(fake, {}, refund=True)
    store = MemoryDeduplicator()
    cases: list[tuple[Kind, bytes]] = [("v2_pay", pay), ("v2_refund", refund), ("v2_pay", pay)]
    for kind, body in cases:
        answer = await client.notifications.handle({}, body, handler, kind=kind, dedup=store)
        assert answer.body == ACK_V2
    assert [type(n) for n in seen] == [V2PayNotification, V2RefundNotification]
    bad = await client.notifications.handle({}, refund, handler, kind="v2_pay", dedup=store)
    assert bad.status == 401 and b"FAIL" in bad.body
