"""Protocol edge cases the documentation and the official SDKs' tests pin down (issue 16).

APIv2 GET signing over the query, getaccesstoken's JSON answer, statement downloads signed
over their SHA-1, XML answers to APIv2 downloads with ``sink=``, hostile answer bodies.
All against the fake WeChat Pay server over loopback, or a raw-socket server for bodies the
fake would never send.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wechatpay_chain import APIError, Client, InvalidArgumentError, VerificationError
from wechatpay_chain.protocol.v2 import (
    is_download,
    is_json_answer,
    is_unsigned_answer,
    json_answer_failure,
    sign_fields,
)
from wechatpay_chain.protocol.v3 import (
    STATEMENT_DIGEST,
    is_unsigned_v3,
    statement_digest,
    statement_message,
)
from wechatpay_chain.testing import FakeWechatPay, Reply, make_bill

pytestmark = pytest.mark.anyio

APPID = "wxcbda96de0b165486"


def entrust_query(server: FakeWechatPay, **extra: Any) -> dict[str, Any]:
    """The documented h5entrustweb query (openapi/v2/papay/h5entrustweb.md)."""
    return {
        "appid": APPID,
        "mch_id": server.merchant.mchid,
        "plan_id": "12535",
        "contract_code": "100000",
        "request_serial": 1000,
        "contract_display_account": "微信代扣",
        "notify_url": "https://weixin.qq.com",
        "version": "1.0",
        "timestamp": "1700000000",
        "clientip": "119.145.83.6",
        "return_appid": APPID,
        **extra,
    }


def token_query(server: FakeWechatPay, **extra: Any) -> dict[str, Any]:
    """The documented getaccesstoken query (openapi/v2/appauth/getaccesstoken.md)."""
    return {
        "mch_id": server.merchant.mchid,
        "appid": APPID,
        "openid": "baf04e6bbbd06f7b1a197d18ed53b7f1",
        "code": "wxcbda96de0b165489",
        "grant_type": "authorization_code",
        "scope": "pay_identity",
        "sign_type": "HMAC-SHA256",
        **extra,
    }


# --- 1. APIv2 GET: the query is what is signed -------------------------------------------
@pytest.mark.parametrize("sign_type", [None, "MD5", "HMAC-SHA256"])
@pytest.mark.parametrize("template", ["v2/papay/h5entrustweb", "v2/papay/partner/h5entrustweb"])
async def test_apiv2_get_signs_its_query_fields(
    wechatpay_server: FakeWechatPay,
    wechatpay_client: Client,
    template: str,
    sign_type: str | None,
) -> None:
    extra: dict[str, Any] = {"sign": "C380BEC2BFD727A4B6845133519F3AD6"}  # replaced, not kept
    if sign_type is not None:
        extra["sign_type"] = sign_type
    if "partner" in template:
        extra["sub_mch_id"] = "1900000109"
    query = entrust_query(wechatpay_server, **extra)
    resp = await wechatpay_client.chain(template).get(nonceless=True, query=query)
    assert "redirect_url" in resp.text
    sent = wechatpay_server.requests[-1]
    assert sent.method == "GET" and "nonce_str" not in sent.query  # nonceless, as documented
    expected = sign_fields(
        {k: str(v) for k, v in query.items() if k != "sign"},
        wechatpay_server.merchant.secret,
        sign_type or "MD5",
    )
    assert sent.query["sign"] == expected
    assert len(expected) == (64 if sign_type == "HMAC-SHA256" else 32)
    assert sent.query["contract_display_account"] == "微信代扣"


async def test_apiv2_get_without_nonceless_gets_a_signed_nonce(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    with pytest.raises(APIError, match="nonce_str"):
        # The fake, like the documented endpoint, refuses a nonce_str it does not expect.
        await wechatpay_client.v2.papay.h5entrustweb.get(query=entrust_query(wechatpay_server))
    sent = wechatpay_server.requests[-1]
    assert len(sent.query["nonce_str"]) == 32
    assert sent.query["sign"] == sign_fields(sent.query, wechatpay_server.merchant.secret)


async def test_apiv2_get_signed_over_xml_fields_only_is_refused_by_the_fake(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    # A client that signs something else than the query is what WeChat Pay refuses.
    query = entrust_query(wechatpay_server)
    query["sign"] = sign_fields({"mch_id": query["mch_id"]}, wechatpay_server.merchant.secret)
    naked = wechatpay_client.without("signer")
    with pytest.raises(APIError, match="签名错误"):
        await naked.v2.papay.h5entrustweb.get(query=query)


async def test_getaccesstoken_answers_json_and_is_accepted_unsigned(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    resp = await wechatpay_client.v2.appauth.getaccesstoken.get(
        query=token_query(wechatpay_server, sign="C380BEC2BFD727A4B6845133519F3AD6")
    )
    answer = resp.json()
    assert answer["retcode"] == 0 and answer["access_token"]
    sent = wechatpay_server.requests[-1]
    assert len(sent.query["sign"]) == 64  # HMAC-SHA256 as sign_type says
    assert sent.query["sign"] == sign_fields(
        sent.query, wechatpay_server.merchant.secret, "HMAC-SHA256"
    )


async def test_getaccesstoken_nonzero_retcode_is_an_api_error(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    wechatpay_server.state["v2_auth_codes"] = {"the-only-code"}
    with pytest.raises(APIError) as info:
        await wechatpay_client.v2.appauth.getaccesstoken.get(query=token_query(wechatpay_server))
    assert info.value.code == "-1" and "code" in info.value.message
    # A wrong sign is answered the JSON way too, and raised the same way.
    wechatpay_server.route(
        "GET",
        "v2/appauth/getaccesstoken",
        lambda request: Reply(body=b'{"retcode":"-1","retmsg":"sign error"}'),
    )
    with pytest.raises(APIError, match="sign error"):
        await wechatpay_client.v2.appauth.getaccesstoken.get(query=token_query(wechatpay_server))


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"<xml><return_code>SUCCESS</return_code></xml>",
        b'{"retmsg":"ok"}',
        b'{"retcode":true}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"retcode":' + b"1" * 5000 + b"}",
        b'{"retcode":0,"access_token":"\xff\xfe"}',
    ],
)
async def test_getaccesstoken_unreadable_answers_are_never_success(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, body: bytes
) -> None:
    wechatpay_server.route(
        "GET", "v2/appauth/getaccesstoken", lambda request: Reply(body=body)
    )
    with pytest.raises((VerificationError, APIError)):
        await wechatpay_client.v2.appauth.getaccesstoken.get(query=token_query(wechatpay_server))


def test_json_answer_failure_reads_retcode() -> None:
    assert json_answer_failure({"retcode": 0, "retmsg": "ok"}) is None
    assert json_answer_failure({"retcode": "0"}) is None
    assert json_answer_failure({"retcode": -1, "retmsg": "x"}) == {"retcode": "-1", "retmsg": "x"}
    assert json_answer_failure({"retcode": False}) is not None
    assert json_answer_failure([0]) is not None
    assert is_json_answer("/v2/appauth/getaccesstoken?x=1") and is_unsigned_answer(
        "appauth/getaccesstoken"
    )
    assert is_download("pay/downloadbill") and is_download("sandboxnew/pay/downloadfundflow")
    assert not is_download("pay/orderquery")


# --- 2. statements: signed over {"sha1": "<digest>"} ---------------------------------------
STATEMENT = make_bill("2018-01-03", records=4)


@pytest.fixture
def statements(wechatpay_server: FakeWechatPay) -> FakeWechatPay:
    wechatpay_server.files.add_bill(STATEMENT, bill_date="2018-01-03", kind="statement")
    return wechatpay_server


def statement_options(server: FakeWechatPay, base: str, **extra: Any) -> dict[str, Any]:
    return {
        "base_url": server.base_url + base,
        "query": {"date": "20180103", "mchid": server.merchant.mchid},
        **extra,
    }


@pytest.mark.parametrize(
    ("template", "base"), [("v3/statements", "hk/"), ("v3/global/statements", "")]
)
async def test_statement_is_verified_over_its_digest(
    statements: FakeWechatPay, wechatpay_client: Client, template: str, base: str
) -> None:
    resp = await wechatpay_client.chain(template).get(**statement_options(statements, base))
    assert resp.content == STATEMENT
    digest = resp.headers[STATEMENT_DIGEST]
    assert digest == hashlib.sha1(STATEMENT).hexdigest()
    sent = statements.requests[-1]
    assert sent.headers.get("Accept-Encoding") == "identity"
    if base:
        assert sent.template == template  # /hk/v3/statements reached the same endpoint


@pytest.mark.parametrize("template", ["v3/statements", "v3/global/statements"])
@pytest.mark.parametrize(
    "fault", ["tamper_signature", "tamper_body", "no_signature", "unknown_serial"]
)
async def test_forged_statement_is_rejected(
    statements: FakeWechatPay, wechatpay_client: Client, template: str, fault: str
) -> None:
    statements.misbehave(fault, template=template)
    with pytest.raises(VerificationError):
        await wechatpay_client.chain(template).get(**statement_options(statements, "hk/"))


async def test_statement_whose_file_is_not_the_signed_digest_is_rejected(
    statements: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    statements.files.misbehave("wrong_hash")
    with pytest.raises(VerificationError, match="SHA-1"):
        await wechatpay_client.v3.global_.statements.get(**statement_options(statements, ""))
    statements.files.misbehave("wrong_hash")
    target = tmp_path / "statement.csv"
    with pytest.raises(VerificationError, match="SHA-1"):
        await wechatpay_client.v3.global_.statements.get(
            **statement_options(statements, "", sink=target)
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("template", ["v3/statements", "v3/global/statements"])
async def test_statement_streams_into_the_sink_after_its_checks(
    statements: FakeWechatPay, wechatpay_client: Client, tmp_path: Path, template: str
) -> None:
    target = tmp_path / "statement.csv"
    resp = await wechatpay_client.chain(template).get(
        **statement_options(statements, "hk/", sink=target)
    )
    assert target.read_bytes() == STATEMENT and resp.extensions["sink_size"] == len(STATEMENT)
    for fault in ("tamper_signature", "tamper_body", "no_signature"):
        statements.misbehave(fault, template=template)
        sink = io.BytesIO()
        with pytest.raises(VerificationError):
            await wechatpay_client.chain(template).get(
                **statement_options(statements, "hk/", sink=sink)
            )
        assert sink.getvalue() == b"", fault


async def test_compressed_statement_is_verified_over_its_digest(
    statements: FakeWechatPay, wechatpay_client: Client
) -> None:
    resp = await wechatpay_client.v3.global_.statements.get(
        **statement_options(statements, "", headers={"Accept-Encoding": "gzip"})
    )
    assert resp.headers["Content-Encoding"] == "gzip" and resp.content == STATEMENT
    statements.misbehave("tamper_signature")
    with pytest.raises(VerificationError):
        await wechatpay_client.v3.global_.statements.get(
            **statement_options(statements, "", headers={"Accept-Encoding": "gzip"})
        )


async def test_statement_without_digest_header_is_verified_over_its_body(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client
) -> None:
    wechatpay_server.route("GET", "v3/global/statements", lambda request: {"ok": True})
    resp = await wechatpay_client.v3.global_.statements.get(query={"date": "20180103"})
    assert resp.json() == {"ok": True}
    wechatpay_server.misbehave("tamper_body")
    with pytest.raises(VerificationError):
        await wechatpay_client.v3.global_.statements.get(query={"date": "20180103"})


def test_statement_helpers() -> None:
    digest = hashlib.sha1(b"x").hexdigest()
    assert statement_message(digest) == b'{"sha1":"' + digest.encode() + b'"}'
    assert statement_digest(digest) == digest and statement_digest(None) is None
    for bad in ("", "ab" * 19 + " a", "zz" * 20, digest + "00", '"},"x":"' + "0" * 32):
        with pytest.raises(VerificationError):
            statement_digest(bad)
    assert not is_unsigned_v3("v3/global/statements")
    assert not is_unsigned_v3("v3/statements")


# --- 3. APIv2 downloads: an XML answer that is not a FAIL goes into the sink --------------
def bill_xml(server: FakeWechatPay) -> dict[str, Any]:
    return {"appid": "wx1", "mch_id": server.merchant.mchid, "bill_date": "20240131"}


@pytest.mark.parametrize("template", ["v2/pay/downloadbill", "v2/pay/downloadfundflow"])
async def test_xml_download_answer_goes_into_the_sink_as_received(
    request: pytest.FixtureRequest, tmp_path: Path, template: str
) -> None:
    kind = "fundflow" if template.endswith("fundflow") else "trade"
    tls = "_tls" if kind == "fundflow" else ""  # downloadfundflow needs the merchant certificate
    wechatpay_server: FakeWechatPay = request.getfixturevalue(f"wechatpay{tls}_server")
    wechatpay_client: Client = request.getfixturevalue(f"wechatpay{tls}_client")
    security = {"security": True} if tls else {}
    xml = b"<xml><return_code><![CDATA[SUCCESS]]></return_code><note>as sent</note></xml>"
    default_type = "BASIC" if kind == "fundflow" else "ALL"
    wechatpay_server.files.add_bill(xml, bill_date="2024-01-31", bill_type=default_type, kind=kind)
    fields = bill_xml(wechatpay_server)
    if kind == "fundflow":
        fields["sign_type"] = "HMAC-SHA256"
    target = tmp_path / "bill.xml"
    await wechatpay_client.chain(template).post(xml=fields, sink=target, **security)
    assert target.read_bytes() == xml
    # A large XML-looking file streams through whole, too.
    big = b"<xml>" + b"<row>data</row>" * 100_000 + b"</xml>"
    wechatpay_server.files.add_bill(big, bill_date="2024-01-31", bill_type=default_type, kind=kind)
    sink = io.BytesIO()
    await wechatpay_client.chain(template).post(xml=fields, sink=sink, **security)
    assert sink.getvalue() == big


async def test_csv_and_fail_answers_to_downloadbill_with_sink(
    wechatpay_server: FakeWechatPay, wechatpay_client: Client, tmp_path: Path
) -> None:
    target = tmp_path / "bill.csv"
    await wechatpay_client.v2.pay.downloadbill.post(xml=bill_xml(wechatpay_server), sink=target)
    assert target.read_bytes().startswith("\ufeff交易时间".encode())
    wechatpay_server.files.misbehave("no_bill")
    other = tmp_path / "none.csv"
    with pytest.raises(APIError, match="No Bill Exist"):
        await wechatpay_client.v2.pay.downloadbill.post(xml=bill_xml(wechatpay_server), sink=other)
    assert not other.exists() and [p.name for p in tmp_path.iterdir()] == ["bill.csv"]


# --- 4. hostile answers end in the SDK's own errors -----------------------------------------
class RawServer:
    """Answers every request with one fixed HTTP response, read from ``answer``."""

    def __init__(self) -> None:
        self.answer = b""
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, rest = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                while len(rest) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    rest += chunk
                conn.sendall(self.answer)

    def respond(self, status: str, body: bytes, content_type: str = "application/json") -> None:
        self.answer = (
            f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode() + body

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def raw_server() -> Iterator[RawServer]:
    server = RawServer()
    yield server
    server.close()


HOSTILE_JSON = [
    b"[" * 200_000,
    b'{"code":' + b"[" * 100_000 + b"]" * 100_000 + b',"message":"x"}',
    b'{"code":' + b"9" * 10_000 + b',"message":"big"}',
    b'{"code":"A","code":"B","message":"dup"}',
    b'{"code":"E","message":"\xff\xfe\xfd"}',
    b"\xef\xbb\xbf{\"code\":1e999999,\"message\":[1]}",
    b"",
    b"<html>oops</html>",
]


@pytest.mark.parametrize("body", HOSTILE_JSON, ids=range(len(HOSTILE_JSON)))
async def test_hostile_v3_error_bodies_raise_api_error(
    wechatpay_server: FakeWechatPay, raw_server: RawServer, body: bytes
) -> None:
    raw_server.respond("400 Bad Request", body)
    async with wechatpay_server.client(base_url=f"http://127.0.0.1:{raw_server.port}/") as c:
        with pytest.raises(APIError) as info:
            await c.v3.pay.transactions.native.post(json={"a": 1})
    assert info.value.status_code == 400
    assert len(str(info.value)) < 2000


HOSTILE_XML = [
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><xml>&b;</xml>',
    b'<!DOCTYPE xml SYSTEM "file:///etc/passwd"><xml><a>&xxe;</a></xml>',
    b"<xml>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</xml>",
    b"<xml><return_code>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</return_code></xml>",
    b"<xml><return_code>SUCCESS</return_code><return_code>FAIL</return_code></xml>",
    b"<xml><return_code>\xff\xfe</return_code></xml>",
    b"<xml><return_code>SUCCESS</return_code>",
    b"<html><body>502</body></html>",
    b"",
]


@pytest.mark.parametrize("body", HOSTILE_XML, ids=range(len(HOSTILE_XML)))
@pytest.mark.parametrize("status", ["200 OK", "500 Internal Server Error"])
async def test_hostile_v2_answers_end_in_sdk_errors(
    wechatpay_server: FakeWechatPay, raw_server: RawServer, body: bytes, status: str
) -> None:
    raw_server.respond(status, body, "text/xml")
    expected = VerificationError if status.startswith("200") else APIError
    async with wechatpay_server.client(base_url=f"http://127.0.0.1:{raw_server.port}/") as c:
        with pytest.raises(expected):
            await c.v2.pay.orderquery.post(
                xml={"appid": "wx1", "mch_id": wechatpay_server.merchant.mchid}
            )


@pytest.mark.parametrize("body", HOSTILE_JSON[:6], ids=range(6))
async def test_hostile_getaccesstoken_bodies_end_in_sdk_errors(
    wechatpay_server: FakeWechatPay, raw_server: RawServer, body: bytes
) -> None:
    async with wechatpay_server.client(base_url=f"http://127.0.0.1:{raw_server.port}/") as c:
        for status, expected in (("200 OK", VerificationError), ("502 Bad Gateway", APIError)):
            raw_server.respond(status, body)
            with pytest.raises((expected, APIError)):
                await c.v2.appauth.getaccesstoken.get(query=token_query(wechatpay_server))


def test_hostile_answers_never_raise_python_errors_from_the_parsers() -> None:
    from wechatpay_chain import Transformer

    for body in HOSTILE_XML:
        try:
            Transformer.to_dict(body)
        except InvalidArgumentError:
            pass
    assert json.loads(b'{"a":1}') == {"a": 1}
