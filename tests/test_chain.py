from __future__ import annotations

import pytest

from wechatpay_chain import Chain, Client
from wechatpay_chain._chain import normalize


@pytest.fixture
def client() -> Client:
    return Client(mchid="1900000001")


TEMPLATE = "v3/marketing/favor/users/{openid}/coupons"


def test_all_forms_build_the_same_template(client: Client) -> None:
    forms = [
        client.v3.marketing.favor.users._openid_.coupons,
        client.chain(TEMPLATE),
        client[TEMPLATE],
        client.v3["marketing/favor"].users["{openid}"].coupons,
    ]
    assert {str(node) for node in forms} == {TEMPLATE}
    assert len(set(forms)) == 1


@pytest.mark.parametrize(
    ("name", "segment"),
    [
        ("outTradeNo", "out-trade-no"),
        ("complaintsV2", "complaints-v2"),
        ("_out_trade_no_", "{out_trade_no}"),
        ("_outTradeNo_", "{outTradeNo}"),
        ("send_coupon", "send_coupon"),
        ("applyment4sub", "applyment4sub"),
        ("h5", "h5"),
        ("global_", "global"),
        ("import_", "import"),
        ("return_", "return"),
        ("try_", "try"),
        ("plain_", "plain_"),
    ],
)
def test_attribute_names_normalise_to_segments(name: str, segment: str) -> None:
    assert normalize(name) == segment


def test_keyword_segments_by_attribute_and_item(client: Client) -> None:
    assert str(client.v3.global_.statements) == "v3/global/statements"
    assert str(client.v3["global"].statements) == "v3/global/statements"


def test_item_access_and_chain_never_recase(client: Client) -> None:
    assert str(client["v2/secapi/mch/addInstitutionsub"]) == "v2/secapi/mch/addInstitutionsub"
    assert str(client.v2.secapi.mch.chain("addInstitutionsub")) == "v2/secapi/mch/addInstitutionsub"


def test_leading_slash_dropped_trailing_slash_kept(client: Client) -> None:
    assert str(client.chain("/v3/pay/transactions")) == "v3/pay/transactions"
    assert str(client.chain("v3/applyment4sub/applyment/")) == "v3/applyment4sub/applyment/"
    assert str(client.v3.applyment4sub.applyment[""]) == "v3/applyment4sub/applyment/"


@pytest.mark.parametrize("name", ["close", "send", "stream", "items", "keys", "values", "copy"])
def test_common_method_names_are_plain_segments(client: Client, name: str) -> None:
    node = getattr(client.v3.complaints, name)
    assert isinstance(node, Chain)
    assert str(node) == f"v3/complaints/{name}"


def test_verb_is_callable_and_chainable(client: Client) -> None:
    node = client.v3.marketing.partnerships
    assert callable(node.delete)
    assert str(node.delete) == "v3/marketing/partnerships/delete"
    assert str(node.delete.post) == "v3/marketing/partnerships/delete/post"
    assert node.delete._target == "v3/marketing/partnerships"
    assert node.delete.post._target == "v3/marketing/partnerships/delete"


def test_nodes_are_immutable_and_hashable(client: Client) -> None:
    node = client.v3.pay
    with pytest.raises(AttributeError):
        node.foo = 1  # type: ignore[misc]
    assert node.transactions is node.transactions  # cached by attribute
    assert hash(client["v3/pay"]) == hash(node)
    assert node != Client(mchid="1900000001").v3.pay  # another client, another node
    assert repr(node) == "<Chain 'v3/pay'>"


def test_dunder_lookups_do_not_become_segments(client: Client) -> None:
    node = client.v3.pay
    assert not hasattr(node, "__array__")
    with pytest.raises(TypeError):
        node[1]  # type: ignore[index]
