"""Every catalogued WeChat Pay endpoint (each documented one, see tests/endpoints_catalog.py),
in the three chain forms, async and sync, against the fake server's catch-all: the exact
path reaches the server, the answer is verified, and answers that are not what WeChat Pay
signed are refused.

The catalog is tests/endpoints_catalog.py. Clients live for the module (one per server and
event loop) so that the sweep costs calls, not connection setups.
"""

from __future__ import annotations

import contextvars
import json
import keyword
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from endpoints_catalog import DOCUMENTED, ENDPOINTS, FLAGS, Endpoint

from wechatpay_chain import (
    Chain,
    Client,
    Transformer,
    UploadForm,
    VerificationError,
)
from wechatpay_chain.protocol.v2 import JSON_ANSWER_PATHS, is_unsigned_answer
from wechatpay_chain.protocol.v3 import is_unsigned_v3
from wechatpay_chain.testing import FakeWechatPay, Reply
from wechatpay_chain.testing._catchall import echo
from wechatpay_chain.testing._v2 import needs_certificate, to_xml

#: Placeholder values a path must survive: spaces, slashes, non-ASCII, URL syntax.
AWKWARD = ("a b", "x/y", "订单-7", "100%", "a+b&c=d", "?#[]", "é ü", "..x", "~_.-")
NOTE = "满100减10 & <x>"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
BILL = b"\xef\xbb\xbf\xe4\xba\xa4\xe6\x98\x93\xe6\x97\xb6\xe9\x97\xb4,amount\n`2024-01-01,`1.00\n"
VERB_METHODS = frozenset(
    {"chain", "get_sync", "put_sync", "post_sync", "patch_sync", "delete_sync"}
)
_KEBAB = re.compile(r"[a-z][a-z0-9_]*(?:-[a-z][a-z0-9_]*)*")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def endpoint_ids(endpoints: tuple[Endpoint, ...]) -> list[str]:
    return [e.id for e in endpoints]


# --- the attribute form, derived from the template (DESIGN.md §3) ------------------------
def attribute_name(segment: str) -> str | None:
    """The attribute standing for ``segment``, or None where only item access can say it."""
    found = _PLACEHOLDER.fullmatch(segment)
    if found:
        return f"_{found.group(1)}_"
    if keyword.iskeyword(segment):
        return segment + "_"
    if not _KEBAB.fullmatch(segment):
        return None  # empty (a trailing slash), capitals, a leading digit...
    head, *rest = segment.split("-")
    name = head + "".join(part[0].upper() + part[1:] for part in rest)
    if name in VERB_METHODS or keyword.iskeyword(name):
        return None
    return name


def attribute_node(client: Client, template: str) -> Chain:
    node: Any = client
    for segment in template.split("/"):
        name = attribute_name(segment)
        node = getattr(node, name) if name is not None else node[segment]
    assert isinstance(node, Chain)
    return node


def three_forms(client: Client, template: str) -> tuple[Chain, Chain, Chain]:
    return attribute_node(client, template), client.chain(template), client[template]


# --- what to send, what must arrive -------------------------------------------------------
def placeholder_values(endpoint: Endpoint, salt: int) -> dict[str, str]:
    names = _PLACEHOLDER.findall(endpoint.template)
    return {name: f"{AWKWARD[(salt + k) % len(AWKWARD)]}{k}" for k, name in enumerate(names)}


def expected_path(endpoint: Endpoint, values: dict[str, str]) -> str:
    """The path WeChat Pay must see: RFC 6570 simple expansion, APIv2 without ``v2/``."""
    template = endpoint.template.removeprefix("v2/")
    return "/" + _PLACEHOLDER.sub(lambda m: quote(values[m.group(1)], safe=""), template)


def call_options(
    server: FakeWechatPay, endpoint: Endpoint, values: dict[str, str]
) -> dict[str, Any]:
    options: dict[str, Any] = dict(values)
    if endpoint.upload:
        options["body"] = UploadForm(PNG, filename="logo.png")
    elif endpoint.api == "v2":
        options["xml"] = {
            "mch_id": server.merchant.mchid,
            "appid": "wx8888888888888888",
            "note": NOTE,
        }
    elif endpoint.method == "GET":
        options["query"] = {"mchid": server.merchant.mchid, "note": NOTE}
    elif endpoint.method != "DELETE":
        options["json"] = {"endpoint": endpoint.template, "note": NOTE}
    if endpoint.security:
        options["security"] = True
    return options


def send(node: Chain, method: str) -> Callable[..., Any]:
    verb: Callable[..., Any] = getattr(node, method.lower())
    return verb


def prepare(server: FakeWechatPay, endpoint: Endpoint) -> None:
    """Catch-all on; the seed routes that would answer instead echo too (or serve a bill)."""
    match_path = endpoint.template
    seeded = server._match(endpoint.method, match_path) is not None
    server.catch_all()
    if endpoint.api == "v2" and endpoint.upload:
        return  # the fake's own upload handler answers: the stored file is checked
    if endpoint.api == "v2" and json_answer(endpoint):
        server.route(endpoint.method, endpoint.template, json_echo)
    elif endpoint.api == "v2" and endpoint.download:
        server.route(
            endpoint.method,
            endpoint.template,
            lambda request: Reply(body=BILL, headers={"Content-Type": "text/plain"}),
        )
    elif seeded:
        server.route(endpoint.method, endpoint.template, echo)


def json_answer(endpoint: Endpoint) -> bool:
    """An APIv2 endpoint that answers JSON, not XML (``appauth/getaccesstoken``)."""
    return endpoint.template.removeprefix("v2/") in JSON_ANSWER_PATHS


def json_echo(request: Any) -> Reply:
    echo = {"retcode": 0, "echo_method": request.method, "echo_path": request.path}
    return Reply(body=json.dumps(echo).encode(), headers={"Content-Type": "application/json"})


def check_answer(
    server: FakeWechatPay, endpoint: Endpoint, values: dict[str, str], resp: httpx.Response
) -> None:
    path = expected_path(endpoint, values)
    assert resp.status_code == 200
    recorded = server.requests[-1]
    assert (recorded.method, recorded.path) == (endpoint.method, path)
    if endpoint.api == "v3":
        answer = resp.json()["echo"]
        assert (answer["method"], answer["path"]) == (endpoint.method, path)
        if endpoint.upload:
            assert recorded.headers["Content-Type"].startswith("multipart/form-data")
        elif endpoint.method == "GET":
            assert answer["query"] == {"mchid": server.merchant.mchid, "note": NOTE}
        elif endpoint.method != "DELETE":
            assert answer["json"] == {"endpoint": endpoint.template, "note": NOTE}
        return
    assert recorded.tls_client_cert is endpoint.security
    if endpoint.upload:
        assert recorded.headers["Content-Type"].startswith("multipart/form-data")
        answer = Transformer.to_dict(resp.content)
        stored = server.files.media[answer["media_id"]]
        assert (stored.template, stored.content, stored.filename) == (
            endpoint.template,
            PNG,
            "logo.png",
        )
        assert "sign" in answer
        return
    if endpoint.download:
        assert resp.content == BILL
        return
    if json_answer(endpoint):
        answer = resp.json()
        assert (answer["echo_method"], answer["echo_path"]) == (endpoint.method, path)
        assert endpoint.unsigned
        return
    fields = Transformer.to_dict(resp.content)
    assert (fields["echo_method"], fields["echo_path"]) == (endpoint.method, path)
    assert fields["note"] == NOTE
    assert ("sign" in fields) is not endpoint.unsigned


# --- fixtures: module-long clients, one per server and event loop ------------------------
@pytest.fixture(scope="module", params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Module-scoped here, so one event loop (and one connection pool) serves the sweep."""
    return str(request.param)


def _client(server: FakeWechatPay) -> Client:
    key = server.merchant.private_key  # a key object: no PEM parsing per client
    client: Client = server.client(private_key=key)
    return client


@pytest.fixture(scope="module")
async def async_clients(anyio_backend: str) -> AsyncIterator[dict[int, Client]]:
    made: dict[int, Client] = {}
    yield made
    for client in made.values():
        await client.aclose()


@pytest.fixture(scope="module")
def sync_clients() -> Iterator[dict[int, Client]]:
    made: dict[int, Client] = {}
    yield made
    for client in made.values():
        # Closed in a clean context: anyio's runner may still mark this thread as trio's,
        # which the sync bridge's shutdown would believe (reported; _transport.py).
        contextvars.Context().run(client.close)


def server_for(request: pytest.FixtureRequest, endpoint: Endpoint) -> FakeWechatPay:
    """The reset fake: on HTTPS with merchant certificates for ``security`` endpoints."""
    name = "wechatpay_tls_server" if endpoint.security else "wechatpay_server"
    server: FakeWechatPay = request.getfixturevalue(name)
    return server


def client_for(clients: dict[int, Client], server: FakeWechatPay) -> Client:
    client = clients.get(id(server))
    if client is None:
        client = clients[id(server)] = _client(server)
    return client


# --- the catalog itself -------------------------------------------------------------------
def test_catalog_lists_real_endpoints_once() -> None:
    assert len(ENDPOINTS) >= 1100
    assert {e.id for e in DOCUMENTED} <= {e.id for e in ENDPOINTS}  # all the typed layer has
    assert len({e.id for e in ENDPOINTS}) == len(ENDPOINTS)
    assert sum(e.api == "v2" for e in ENDPOINTS) >= 100
    for e in ENDPOINTS:
        assert e.method in {"GET", "POST", "PUT", "PATCH", "DELETE"}, e.id
        assert re.fullmatch(r"v[23]/[A-Za-z0-9_./{}-]+", e.template), e.id
        assert "//" not in e.template and "{" not in _PLACEHOLDER.sub("", e.template), e.id
        if e.api == "v3":
            assert not (e.security or e.unsigned), e.id
            assert not e.download or e.method == "GET", e.id
        assert not (e.download and e.upload), e.id
    assert FLAGS == {"security", "download", "unsigned", "upload"}


def test_every_certificate_endpoint_of_the_fake_is_marked_security() -> None:
    for e in ENDPOINTS:
        if e.api == "v2" and needs_certificate(e.template.removeprefix("v2/")):
            assert e.security, e.id


def test_attribute_form_follows_the_segment_rules() -> None:
    assert attribute_name("out-trade-no") == "outTradeNo"
    assert attribute_name("complaints-v2") == "complaintsV2"
    assert attribute_name("{out_trade_no}") == "_out_trade_no_"
    assert attribute_name("global") == "global_"
    assert {attribute_name(s) for s in ("import", "return")} == {"import_", "return_"}
    assert attribute_name("video_upload") == "video_upload"
    assert attribute_name("delete") == "delete"  # a verb, and chainable
    for item_only in ("", "addInstitutionsub", "4sub", "chain", "post_sync"):
        assert attribute_name(item_only) is None


# --- every endpoint -----------------------------------------------------------------------
@pytest.mark.anyio
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=endpoint_ids(ENDPOINTS))
async def test_endpoint_is_reached_and_its_answer_verified(
    request: pytest.FixtureRequest,
    anyio_backend: str,
    async_clients: dict[int, Client],
    endpoint: Endpoint,
) -> None:
    server = server_for(request, endpoint)
    client = client_for(async_clients, server)
    prepare(server, endpoint)
    forms = three_forms(client, endpoint.template)
    assert [str(node) for node in forms] == [endpoint.template] * 3
    assert forms[0] == forms[1] == forms[2] == client.chain("/" + endpoint.template)
    assert len({hash(node) for node in forms}) == 1
    head, _, rest = endpoint.template.partition("/")
    assert client[head][rest] == forms[0]

    salt = ENDPOINTS.index(endpoint)
    node = forms[(salt + (anyio_backend == "trio")) % 3]
    values = placeholder_values(endpoint, salt)
    resp = await send(node, endpoint.method)(**call_options(server, endpoint, values))
    check_answer(server, endpoint, values, resp)
    if endpoint.api == "v2" and endpoint.download:
        return  # the bill is a file: nothing to sign (tampering: test_bills.py)

    # An answer without WeChat Pay's signature is taken only where the docs say it has none.
    server.misbehave("no_signature" if endpoint.api == "v3" else "v2_unsigned")
    unsigned = send(node, endpoint.method)(**call_options(server, endpoint, values))
    if endpoint.download or endpoint.unsigned:
        assert (await unsigned).status_code == 200
    else:
        with pytest.raises(VerificationError):
            await unsigned


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=endpoint_ids(ENDPOINTS))
def test_endpoint_answers_its_blocking_twin(
    request: pytest.FixtureRequest, sync_clients: dict[int, Client], endpoint: Endpoint
) -> None:
    server = server_for(request, endpoint)
    client = client_for(sync_clients, server)
    prepare(server, endpoint)
    salt = ENDPOINTS.index(endpoint)
    node = three_forms(client, endpoint.template)[(salt + 2) % 3]
    values = placeholder_values(endpoint, salt + 1)
    resp = send(node, endpoint.method + "_sync")(**call_options(server, endpoint, values))
    check_answer(server, endpoint, values, resp)


# --- tampered answers ---------------------------------------------------------------------
def _tamper_sample() -> tuple[Endpoint, ...]:
    """Every ninth endpoint, plus the first of each kind, leaving out files (unsigned)."""
    candidates = [e for e in ENDPOINTS if not e.download]
    chosen = {e.id: e for e in candidates[::9]}
    kinds: list[Callable[[Endpoint], bool]] = [
        lambda e: e.api == "v2" and e.unsigned,
        lambda e: e.api == "v2" and e.security and not e.unsigned,
        lambda e: e.api == "v2" and e.method == "GET",
        lambda e: e.upload,
        lambda e: e.method in ("PUT", "PATCH", "DELETE"),
        lambda e: e.template.endswith("/"),
        lambda e: e.template.endswith("/delete"),
    ]
    for kind in kinds:
        for e in (e for e in candidates if kind(e)):
            chosen.setdefault(e.id, e)
            break
    return tuple(chosen.values())


TAMPER_SAMPLE = _tamper_sample()


@pytest.mark.anyio
@pytest.mark.parametrize("endpoint", TAMPER_SAMPLE, ids=endpoint_ids(TAMPER_SAMPLE))
async def test_tampered_answer_is_rejected(
    request: pytest.FixtureRequest,
    anyio_backend: str,
    async_clients: dict[int, Client],
    endpoint: Endpoint,
) -> None:
    server = server_for(request, endpoint)
    client = client_for(async_clients, server)
    prepare(server, endpoint)
    values = placeholder_values(endpoint, 3)
    if endpoint.api == "v3":
        server.misbehave("tamper_body")
    elif not endpoint.unsigned:
        server.misbehave("v2_wrong_sign")
    else:
        # Answered without sign as a rule, but a sign that is there must still be right.
        forged = {"return_code": "SUCCESS", "result_code": "SUCCESS", "sign": "0" * 32}
        server.route(endpoint.method, endpoint.template, lambda r: Reply(body=to_xml(forged)))
    node = client.chain(endpoint.template)
    with pytest.raises(VerificationError):
        await send(node, endpoint.method)(**call_options(server, endpoint, values))
    assert server.requests[-1].path == expected_path(endpoint, values)


def test_tamper_sample_covers_every_kind() -> None:
    assert len(TAMPER_SAMPLE) >= 50
    assert {e.api for e in TAMPER_SAMPLE} == {"v2", "v3"}
    assert any(e.upload for e in TAMPER_SAMPLE)
    assert any(e.unsigned for e in TAMPER_SAMPLE)
    assert any(e.security for e in TAMPER_SAMPLE)


# --- answers without content --------------------------------------------------------------
CLOSE = "v3/pay/transactions/out-trade-no/{out_trade_no}/close"


@pytest.mark.anyio
async def test_signed_no_content_answer_verifies_and_a_forged_one_does_not(
    wechatpay_server: FakeWechatPay, anyio_backend: str, async_clients: dict[int, Client]
) -> None:
    client = client_for(async_clients, wechatpay_server)
    wechatpay_server.route("POST", CLOSE, lambda request: Reply(204))
    node = client.v3.pay.transactions.outTradeNo._out_trade_no_.close
    resp = await node.post(out_trade_no="T 1", json={"mchid": wechatpay_server.merchant.mchid})
    assert (resp.status_code, resp.content) == (204, b"")
    assert "Wechatpay-Signature" in resp.headers
    for fault in ("no_signature", "tamper_body", "tamper_signature"):
        wechatpay_server.misbehave(fault)
        with pytest.raises(VerificationError):
            await node.post(out_trade_no="T 1", json={"mchid": wechatpay_server.merchant.mchid})


# --- answers WeChat Pay does not sign, found by the sweep ---------------------------------
def test_cross_border_complaint_images_are_unsigned_and_statements_signed() -> None:
    # GET v3/global/statements answers the file with Wechatpay-Statement-Sha1 and a signature
    # over {"sha1":"<it>"} (test_protocol_edges.py): not an unsigned download.
    assert not is_unsigned_v3("v3/global/statements?date=20240101&mchid=1900000001")
    assert is_unsigned_v3("v3/global/merchant-service/images/abc%2Fdef")
    assert not is_unsigned_v3("v3/global/statements", "POST")
    assert not is_unsigned_v3("v3/global/merchant-service/images/upload", "POST")
    assert not is_unsigned_v3("v3/global/merchant-service/complaints")


def test_bank_card_transfers_answer_unsigned_in_both_spellings() -> None:
    # Served under mmpaysptrans/; the PHP SDK spells them under mmpaymkttransfers/.
    for path in ("mmpaysptrans/query_bank", "mmpaymkttransfers/query_bank"):
        assert is_unsigned_answer(path)
    assert is_unsigned_answer("mmpaymkttransfers/pay_bank")
    assert not is_unsigned_answer("mmpaymkttransfers/send_coupon")
