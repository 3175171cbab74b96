"""Transformer: hardened XML -> dict, and dict -> XML that round-trips."""

from __future__ import annotations

import builtins
import enum
import re
import socket
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from _paths import FIXTURES
from hypothesis import given
from hypothesis import strategies as st

from wechatpay_chain._exceptions import InvalidArgumentError
from wechatpay_chain.protocol.transformer import Transformer, field_text

FIXTURES = FIXTURES


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
def no_io(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record every file open and socket connection attempted while parsing."""
    attempts: list[object] = []
    real_open = builtins.open

    def recording_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        attempts.append(file)
        return real_open(file, *args, **kwargs)

    def refusing_connect(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise AssertionError(f"network access to {address!r}")

    monkeypatch.setattr(builtins, "open", recording_open)
    monkeypatch.setattr(socket.socket, "connect", refusing_connect)
    return attempts


# --- the shared fixtures -------------------------------------------------------------------


def test_payment_notification_sample_parses_to_flat_text_fields() -> None:
    fields = Transformer.to_dict(fixture("paysuccess.notification.sample.xml"))
    assert fields["appid"] == "wx2421b1c4370ec43b"
    assert fields["attach"] == "支付测试"
    assert fields["mch_id"] == "10000100"
    assert fields["total_fee"] == "1"  # plain text and CDATA both give str
    assert fields["coupon_fee"] == "10"
    assert fields["sign"] == "B552ED6B279343CB493C5DD0D78AB241"
    assert fields["transaction_id"] == "1004400740201409030005092168"
    assert len(fields) == 20
    assert all(isinstance(v, str) for v in fields.values())


def test_unifiedorder_sample_keeps_the_json_detail_as_text() -> None:
    fields = Transformer.to_dict(fixture("unifiedorder.sample.xml"))
    assert fields["body"] == "JSAPI支付测试"
    assert fields["detail"].startswith('{ "goods_detail":[ { "goods_id":"iphone6s_16G"')
    assert fields["detail"].endswith("} ] }")
    assert fields["notify_url"] == "https://wxpay.wxutil.com/pub_v2/pay/notify.v2.php"
    assert fields["sign"] == "0CB01533B8C1EF103065174F50BCA001"
    assert next(iter(fields)) == "appid"  # document order is kept


def test_sendredpack_sample_parses_despite_blank_lines_between_fields() -> None:
    fields = Transformer.to_dict(fixture("sendredpack.sample.xml"))
    assert fields["wishing"] == "恭喜发财"
    assert fields["act_name"] == "新年红包"
    assert fields["total_amount"] == "200"
    assert fields["risk_info"] == (
        "posttime%3d123123412%26clientversion%3d234134%26mobile%3d122344545%26deviceid%3dIOS"
    )
    assert len(fields) == 15


def test_getpublickey_answer_keeps_the_pem_exactly_including_its_final_newline() -> None:
    fields = Transformer.to_dict(fixture("getpublickey.response.sample.xml"))
    assert fields["return_code"] == "SUCCESS"
    assert fields["mch_id"] == "123456"
    assert fields["pub_key"].startswith("-----BEGIN RSA PUBLIC KEY-----\nMIIBCgKCAQEArT82k67x")
    assert fields["pub_key"].endswith("IDAQAB\n-----END RSA PUBLIC KEY-----\n")
    assert "sign" not in fields


def test_refund_req_info_with_a_root_other_than_xml_is_accepted() -> None:
    fields = Transformer.to_dict(fixture("refund.notification.req_info.sample.xml"))
    assert fields["refund_recv_accout"] == "支付用户零钱"
    assert fields["success_time"] == "2018-11-19 16:24:13"
    assert fields["refund_fee"] == "3960"
    assert len(fields) == 13


def test_fragment_injection_sample_keeps_both_payments_as_a_list_never_merged() -> None:
    # The sample is the classic XML-injection result: a comment value closed its element and
    # opened a second <payment>. Parsing reports the structure faithfully: the repeated element
    # becomes a list, so no value silently replaces another (and for APIv2 answers, a list
    # fails verification; see test_v2_protocol).
    fields = Transformer.to_dict(fixture("fragment_injection.sample.xml"))
    assert fields == {
        "payment": [
            {"account": "5678-attacker", "rcpt": "206-1234", "amount": "100.00", "comment": ""},
            {"account": "1234-victim", "rcpt": "206-1234", "amount": "100.00", "comment": "Hacked"},
        ]
    }


def test_fragment_injection_payload_in_a_value_stays_text_when_written() -> None:
    payload = (
        "</comment></payment><payment><account>1234-victim</account>"
        "<rcpt>206-1234</rcpt><amount>100.00</amount><comment>Hacked"
    )
    xml = Transformer.to_xml({"account": "5678-attacker", "comment": payload})
    assert xml.count("<payment>") == 1  # only inside the CDATA section
    assert Transformer.to_dict(xml) == {"account": "5678-attacker", "comment": payload}


def test_xxe_injection_sample_is_refused_without_any_fetch(no_io: list[object]) -> None:
    with pytest.raises(InvalidArgumentError, match="XML: DOCTYPE is not allowed"):
        Transformer.to_dict(fixture("invalid.xxe_injection.sample.xml"))
    assert no_io == []


def test_xxe_pointing_at_a_local_file_never_reads_it(tmp_path: Path, no_io: list[object]) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    no_io.clear()
    for declaration in (
        f'<!ENTITY xxe SYSTEM "file://{secret}">',
        f'<!ENTITY % p SYSTEM "file://{secret}"> %p;',
    ):
        xml = f"<!DOCTYPE xml [{declaration}]><xml><v>&xxe;</v></xml>"
        with pytest.raises(InvalidArgumentError) as caught:
            Transformer.to_dict(xml)
        assert "DOCTYPE" in str(caught.value)
        assert "TOP-SECRET-CONTENT" not in str(caught.value)
    assert no_io == []


def test_external_dtd_reference_is_refused(no_io: list[object]) -> None:
    xml = '<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/evil.dtd"><xml><a>1</a></xml>'
    with pytest.raises(InvalidArgumentError, match="DOCTYPE"):
        Transformer.to_dict(xml)
    assert no_io == []


def test_entity_expansion_bomb_is_refused_at_once() -> None:
    entities = '<!ENTITY a0 "lol">' + "".join(
        f'<!ENTITY a{i} "{("&a" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    )
    xml = f"<!DOCTYPE xml [{entities}]><xml><v>&a9;</v></xml>"
    started = time.perf_counter()
    with pytest.raises(InvalidArgumentError, match="DOCTYPE"):
        Transformer.to_dict(xml)
    assert time.perf_counter() - started < 1


def test_bad_entity_sample_is_refused_as_not_well_formed_with_its_position() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        Transformer.to_dict(fixture("invalid.bad_entity.sample.xml"))
    assert str(caught.value) == "XML: not well-formed (mismatched tag) at line 4, column 34"


def test_nginx_404_page_is_refused_as_html() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        Transformer.to_dict(fixture("invalid.normal_404.sample.html"))
    assert str(caught.value).startswith("XML: got an HTML page, not an XML answer")
    assert "404 Not Found" not in str(caught.value)


def test_well_formed_html_is_refused_too() -> None:
    with pytest.raises(InvalidArgumentError, match="HTML page"):
        Transformer.to_dict("<html><body>Bad Gateway</body></html>")
    with pytest.raises(InvalidArgumentError, match="HTML page"):
        Transformer.to_dict("<!DOCTYPE html><html><body>Bad Gateway</body></html>")


# --- parsing rules -------------------------------------------------------------------------


def test_error_messages_never_echo_the_document() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        Transformer.to_dict("<xml><openid>oUpF8uMEb4qRXf22hE3X68TekukE</openid><oops></xml>")
    message = str(caught.value)
    assert "oUpF8uMEb4qRXf22hE3X68TekukE" not in message
    assert re.fullmatch(r"XML: not well-formed \(.+\) at line 1, column \d+", message)


@pytest.mark.parametrize("document", ["", b"", "   ", "not xml at all", "<xml>"])
def test_empty_or_truncated_input_is_refused(document: str | bytes) -> None:
    with pytest.raises(InvalidArgumentError, match="XML: not well-formed"):
        Transformer.to_dict(document)


def test_undeclared_entity_reference_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="undefined entity"):
        Transformer.to_dict("<xml><a>&xxe;</a></xml>")


def test_predefined_entities_and_character_references_are_decoded() -> None:
    assert Transformer.to_dict("<xml><a>&amp;&lt;&gt;&quot;&apos;&#20320;&#x41;</a></xml>") == {
        "a": "&<>\"'你A"
    }


def test_empty_elements_are_empty_strings_and_whitespace_is_kept() -> None:
    xml = "<xml><a/><b></b><c> padded </c><d>\n</d><e><![CDATA[]]></e></xml>"
    assert Transformer.to_dict(xml) == {"a": "", "b": "", "c": " padded ", "d": "\n", "e": ""}


def test_empty_root_gives_no_fields() -> None:
    assert Transformer.to_dict("<xml/>") == {}
    assert Transformer.to_dict("<xml>\n  </xml>") == {}


def test_root_holding_text_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match=r"root element <xml> holds text"):
        Transformer.to_dict("<xml>SUCCESS</xml>")


def test_nested_elements_become_dicts_and_repeated_ones_lists() -> None:
    xml = "<xml>\n <a>\n  <b>1</b>\n  <c><d>2</d></c>\n </a>\n <e>x</e>\n <e></e>\n</xml>"
    assert Transformer.to_dict(xml) == {"a": {"b": "1", "c": {"d": "2"}}, "e": ["x", ""]}


def test_attributes_comments_and_processing_instructions_are_ignored() -> None:
    xml = '<?xml version="1.0"?><xml><!-- note --><a id="1">v</a><?pi data?><b x="y"/></xml>'
    assert Transformer.to_dict(xml) == {"a": "v", "b": ""}


def test_text_beside_child_elements_is_ignored() -> None:
    assert Transformer.to_dict("<xml>stray<a>1</a>text</xml>") == {"a": "1"}


def test_cdata_split_by_the_writer_is_joined() -> None:
    assert Transformer.to_dict("<xml><a><![CDATA[x]]]]><![CDATA[>y]]></a></xml>") == {"a": "x]]>y"}


def test_bytes_with_a_bom_and_str_with_a_foreign_declaration_both_parse() -> None:
    assert Transformer.to_dict("\ufeff<xml><a>中</a></xml>".encode()) == {"a": "中"}
    # A str is already decoded: its declared encoding no longer applies.
    assert Transformer.to_dict('<?xml version="1.0" encoding="GBK"?><xml><a>中</a></xml>') == {
        "a": "中"
    }


def test_bytes_in_an_encoding_expat_cannot_read_are_refused() -> None:
    body = '<?xml version="1.0" encoding="GBK"?><xml><a>中</a></xml>'.encode("gbk")
    with pytest.raises(InvalidArgumentError, match="XML: cannot be read"):
        Transformer.to_dict(body)
    with pytest.raises(InvalidArgumentError, match="XML: cannot be read"):
        Transformer.to_dict(b'<?xml version="1.0" encoding="nope"?><xml/>')


def test_input_that_is_not_text_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="expected str or bytes, got dict"):
        Transformer.to_dict({"a": "1"})  # type: ignore[arg-type]


# --- writing -------------------------------------------------------------------------------


def test_to_xml_writes_one_element_per_field_in_order() -> None:
    xml = Transformer.to_xml({"b": "2", "a": "x", "total_fee": 101, "skip": None, "empty": ""})
    assert xml == "<xml><b>2</b><a>x</a><total_fee>101</total_fee><empty></empty></xml>"


def test_values_with_markup_characters_are_written_as_cdata() -> None:
    xml = Transformer.to_xml({"detail": '{"a":1}', "body": "A&B", "lt": "<", "gt": ">"})
    assert xml == (
        '<xml><detail><![CDATA[{"a":1}]]></detail><body><![CDATA[A&B]]></body>'
        "<lt><![CDATA[<]]></lt><gt><![CDATA[>]]></gt></xml>"
    )


def test_cdata_terminator_in_a_value_is_split_and_round_trips() -> None:
    xml = Transformer.to_xml({"a": "x]]>y"})
    assert xml == "<xml><a><![CDATA[x]]]]><![CDATA[>y]]></a></xml>"
    assert Transformer.to_dict(xml) == {"a": "x]]>y"}


def test_carriage_returns_survive_the_round_trip() -> None:
    data = {"a": "line1\r\nline2\r", "b": "\r"}
    xml = Transformer.to_xml(data)
    assert "&#13;" in xml
    assert Transformer.to_dict(xml) == data


def test_str_and_int_subclasses_are_written_as_their_plain_value() -> None:
    class TradeType(str, enum.Enum):
        JSAPI = "JSAPI"

    class Fen(enum.IntEnum):
        ONE = 1

    assert Transformer.to_xml({"trade_type": TradeType.JSAPI, "total_fee": Fen.ONE}) == (
        "<xml><trade_type>JSAPI</trade_type><total_fee>1</total_fee></xml>"
    )


@pytest.mark.parametrize("value", [True, False])
def test_bool_values_are_refused_naming_the_field(value: bool) -> None:
    with pytest.raises(InvalidArgumentError, match=r"xml field 'profit_sharing' is a bool"):
        Transformer.to_xml({"profit_sharing": value})


@pytest.mark.parametrize("value", [1.5, 100.0, Decimal("0.01")])
def test_float_and_decimal_values_are_refused_as_money_is_in_fen(value: object) -> None:
    with pytest.raises(InvalidArgumentError, match=r"'total_fee' is a .*integer number of fen"):
        Transformer.to_xml({"total_fee": value})


@pytest.mark.parametrize("value", [{"goods_detail": []}, [1, 2], ("a",)])
def test_structured_values_are_refused_with_a_json_dumps_hint(value: object) -> None:
    with pytest.raises(InvalidArgumentError, match=r"'detail' is a .*json\.dumps"):
        Transformer.to_xml({"detail": value})


def test_bytes_and_other_types_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match=r"'attach' is a bytes; APIv2 fields are str"):
        Transformer.to_xml({"attach": b"raw"})
    with pytest.raises(InvalidArgumentError, match=r"'attach' is a object"):
        Transformer.to_xml({"attach": object()})


@pytest.mark.parametrize(
    "key", ["", "1abc", "-a", ".a", "a b", "a<b", "a>", "a/b", "a:b", "中文", "a&b", 5, None]
)
def test_keys_that_are_not_xml_names_are_refused_naming_the_key(key: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=re.escape(f"xml key {key!r} is not a valid")):
        Transformer.to_xml({key: "v"})


@pytest.mark.parametrize("char", ["\x00", "\x08", "\x0b", "\x1f", "\ud800", "\ufffe", "\uffff"])
def test_characters_xml_cannot_carry_are_refused_without_echoing_the_value(char: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        Transformer.to_xml({"body": "private" + char})
    message = str(caught.value)
    assert message.startswith("xml field 'body' holds U+")
    assert "index 7" in message
    assert "private" not in message


def test_to_xml_refuses_a_non_mapping() -> None:
    with pytest.raises(InvalidArgumentError, match="xml must be a mapping, got list"):
        Transformer.to_xml([("a", "1")])  # type: ignore[arg-type]


def test_field_text_leaves_none_out() -> None:
    assert field_text("a", None) is None
    assert field_text("a", 0) == "0"
    assert field_text("a", "") == ""


# --- round trip ----------------------------------------------------------------------------


def _is_xml_char(char: str) -> bool:
    code = ord(char)
    return (
        char in "\t\n\r"
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,20}", fullmatch=True)
_xml_chars = st.characters(exclude_categories=["Cs"]).filter(_is_xml_char)
_tricky = st.sampled_from(["]]>", "]", "]]", "\r", "\r\n", "<", ">", "&", '"', " ", "\n"])
_values = st.lists(st.one_of(st.text(_xml_chars, max_size=8), _tricky), max_size=8).map("".join)


@given(st.dictionaries(_names, _values, max_size=8))
def test_to_dict_inverts_to_xml_for_any_text(data: dict[str, str]) -> None:
    assert Transformer.to_dict(Transformer.to_xml(data)) == data


# Every character XML 1.0 cannot carry: C0 controls but tab/LF/CR, surrogates, U+FFFE/U+FFFF.
_NOT_XML = [chr(c) for c in [*range(0x20), *range(0xD800, 0xE000), 0xFFFE, 0xFFFF]]
_NOT_XML = [c for c in _NOT_XML if not _is_xml_char(c)]


@given(_values, st.sampled_from(_NOT_XML), _values)
def test_to_xml_refuses_any_character_outside_xml_1_0(before: str, bad: str, after: str) -> None:
    with pytest.raises(InvalidArgumentError, match=r"a character XML 1\.0 cannot carry"):
        Transformer.to_xml({"v": before + bad + after})
