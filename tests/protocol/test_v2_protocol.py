"""APIv2 sans-I/O protocol: request fields, answer failures, answer signs, unsigned paths."""

from __future__ import annotations

from typing import Any

import pytest
from _paths import FIXTURES

from wechatpay_chain._exceptions import InvalidArgumentError, VerificationError
from wechatpay_chain.protocol.transformer import Transformer
from wechatpay_chain.protocol.v2 import (
    SIGN_TYPES,
    UNSIGNED_ANSWER_PATHS,
    answer_failure,
    build_request_fields,
    is_unsigned_answer,
    sign_fields,
    verify_answer,
)

FIXTURES = FIXTURES

KEY = "192006250b4c09247ec02edce69f6a2d"
VECTOR = {
    "appid": "wxd930ea5d5a258f4f",
    "body": "test",
    "device_info": "1000",
    "mch_id": "10000100",
    "nonce_str": "ibuaiVcKdpRxkhJA",
}
VECTOR_MD5 = "9A0A8659F005D6984697E2CA0A9CF3B7"
VECTOR_HMAC = "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"


def build(data: dict[str, Any], **options: Any) -> dict[str, str]:
    settings: dict[str, Any] = {
        "mchid": "10000100",
        "secret": KEY,
        "nonceless": False,
        "nonce": "ibuaiVcKdpRxkhJA",
    }
    settings.update(options)
    return build_request_fields(data, **settings)


def signed(fields: dict[str, str], sign_type: str = "MD5") -> dict[str, str]:
    return {**fields, "sign": sign_fields(fields, KEY, sign_type)}


# --- signing -------------------------------------------------------------------------------


def test_official_vector_signs_with_md5() -> None:
    assert sign_fields(VECTOR, KEY) == VECTOR_MD5
    assert sign_fields(VECTOR, KEY, "MD5") == VECTOR_MD5


def test_official_vector_signs_with_hmac_sha256() -> None:
    assert sign_fields(VECTOR, KEY, "HMAC-SHA256") == VECTOR_HMAC


def test_sign_skips_empty_and_none_values_and_an_existing_sign() -> None:
    noisy = {**VECTOR, "attach": "", "detail": None, "sign": "WHATEVER"}
    assert sign_fields(noisy, KEY) == VECTOR_MD5


def test_sign_orders_keys_bytewise() -> None:
    assert sign_fields(dict(reversed(list(VECTOR.items()))), KEY) == VECTOR_MD5


def test_sign_fields_refuses_an_unknown_sign_type() -> None:
    with pytest.raises(InvalidArgumentError, match="sign_type 'SHA1' is not supported"):
        sign_fields(VECTOR, KEY, "SHA1")


# --- building requests ---------------------------------------------------------------------


def test_request_fields_reproduce_the_official_md5_vector() -> None:
    data = {k: v for k, v in VECTOR.items() if k != "nonce_str"}
    assert build(data) == {**VECTOR, "sign": VECTOR_MD5}


def test_request_fields_reproduce_the_official_hmac_vector() -> None:
    fields = build({**VECTOR, "sign_type": "HMAC-SHA256"})
    expected = sign_fields({**VECTOR, "sign_type": "HMAC-SHA256"}, KEY, "HMAC-SHA256")
    assert fields["sign"] == expected
    assert fields["sign_type"] == "HMAC-SHA256"
    assert len(fields["sign"]) == 64


def test_given_nonce_str_is_kept() -> None:
    fields = build({**VECTOR, "nonce_str": "mine"}, nonce="generated")
    assert fields["nonce_str"] == "mine"


def test_empty_nonce_str_is_replaced_by_the_nonce() -> None:
    assert build({"mch_id": "10000100", "nonce_str": ""}, nonce="n1")["nonce_str"] == "n1"


def test_nonceless_request_gets_no_nonce_str() -> None:
    fields = build({"mch_id": "10000100"}, nonceless=True)
    assert "nonce_str" not in fields
    assert fields["sign"] == sign_fields({"mch_id": "10000100"}, KEY)


def test_sign_is_computed_over_the_final_fields_and_replaces_a_given_one() -> None:
    fields = build({**VECTOR, "sign": "FORGED"})
    assert fields["sign"] == VECTOR_MD5
    assert list(fields)[-1] == "sign"


def test_none_values_are_dropped_and_empty_ones_kept_but_unsigned() -> None:
    fields = build({**VECTOR, "attach": "", "detail": None})
    assert fields["attach"] == ""
    assert "detail" not in fields
    assert fields["sign"] == VECTOR_MD5


def test_int_values_become_decimal_text() -> None:
    fields = build({"mch_id": 10000100, "total_fee": 101})
    assert fields["mch_id"] == "10000100"
    assert fields["total_fee"] == "101"


def test_bool_values_are_refused_before_anything_is_signed() -> None:
    with pytest.raises(InvalidArgumentError, match="xml field 'profit_sharing' is a bool"):
        build({"profit_sharing": True})


def test_float_values_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="'total_fee' is a float"):
        build({"total_fee": 0.01})


def test_dict_values_are_refused_with_a_json_dumps_hint() -> None:
    with pytest.raises(InvalidArgumentError, match=r"'scene_info' is a dict.*json\.dumps"):
        build({"scene_info": {"h5_info": {"type": "Wap"}}})


def test_invalid_key_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="xml key 'a b' is not a valid"):
        build({"a b": "1"})


@pytest.mark.parametrize("field", ["mch_id", "mchid", "combine_mch_id"])
def test_merchant_id_that_differs_from_the_clients_is_refused(field: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        build({field: "1"}, mchid="2")
    assert str(caught.value) == f"xml {field} '1' does not match the client's mchid '2'"


def test_merchant_id_given_as_int_matches_the_clients() -> None:
    assert build({"mch_id": 2}, mchid="2")["mch_id"] == "2"


def test_merchant_id_is_not_checked_when_the_client_has_none() -> None:
    assert build({"mch_id": "1"}, mchid=None)["mch_id"] == "1"


@pytest.mark.parametrize("sign_type", ["SHA256", "md5", "hmac-sha256", "HMAC-SHA1", ""])
def test_unknown_sign_type_is_refused(sign_type: str) -> None:
    with pytest.raises(InvalidArgumentError, match=f"xml sign_type '{sign_type}' is not supported"):
        build({**VECTOR, "sign_type": sign_type})


@pytest.mark.parametrize("secret", ["", None])
def test_missing_secret_is_refused(secret: str | None) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        build(VECTOR, secret=secret)
    assert str(caught.value) == "secret (the APIv2 key) is required for v2/... requests"


def test_built_fields_write_and_read_back_unchanged() -> None:
    fields = build({**VECTOR, "detail": '{"goods_detail":[]}', "attach": "a&b<c>"})
    assert Transformer.to_dict(Transformer.to_xml(fields)) == fields


# --- answer failures -----------------------------------------------------------------------


def test_success_answer_is_no_failure() -> None:
    assert answer_failure({"return_code": "SUCCESS", "return_msg": "OK"}) is None
    assert answer_failure({"return_code": "SUCCESS", "result_code": "SUCCESS"}) is None


def test_return_code_fail_is_a_failure() -> None:
    answer = Transformer.to_dict(
        "<xml><return_code><![CDATA[FAIL]]></return_code>"
        "<return_msg><![CDATA[签名错误]]></return_msg></xml>"
    )
    assert answer_failure(answer) == {"return_code": "FAIL", "return_msg": "签名错误"}


def test_result_code_fail_is_a_failure_with_its_error_codes() -> None:
    answer = {
        "return_code": "SUCCESS",
        "return_msg": "OK",
        "result_code": "FAIL",
        "err_code": "ORDERPAID",
        "err_code_des": "该订单已支付",
        "sign": "X" * 32,
    }
    assert answer_failure(answer) == {
        "return_code": "SUCCESS",
        "return_msg": "OK",
        "err_code": "ORDERPAID",
        "err_code_des": "该订单已支付",
    }


def test_answer_without_return_code_is_a_non_empty_failure() -> None:
    failure = answer_failure({"foo": "bar"})
    assert failure == {"return_code": ""}
    assert failure  # truthy: a caller testing `if failure:` cannot miss it


def test_duplicated_return_code_is_a_failure() -> None:
    answer = Transformer.to_dict(
        "<xml><return_code>FAIL</return_code><return_code>SUCCESS</return_code></xml>"
    )
    assert answer_failure(answer) is not None


# --- answer verification -------------------------------------------------------------------


def test_answer_with_the_right_md5_sign_verifies() -> None:
    verify_answer({**VECTOR, "sign": VECTOR_MD5}, KEY, sign_type=None, unsigned=False)
    verify_answer({**VECTOR, "sign": VECTOR_MD5}, KEY, sign_type="MD5", unsigned=False)


def test_answer_with_the_right_hmac_sign_verifies() -> None:
    verify_answer({**VECTOR, "sign": VECTOR_HMAC}, KEY, sign_type=None, unsigned=False)
    verify_answer({**VECTOR, "sign": VECTOR_HMAC}, KEY, sign_type="HMAC-SHA256", unsigned=False)


def test_sign_is_compared_exactly_as_the_php_sdk_does() -> None:
    # WeChat Pay writes upper-case hex; hash_equals in the PHP SDK takes nothing else.
    for sign, sign_type in ((VECTOR_MD5, "MD5"), (VECTOR_HMAC, "HMAC-SHA256")):
        for variant in (sign.lower(), sign[:-1] + sign[-1].lower(), " " + sign):
            if variant == sign:
                continue
            with pytest.raises(VerificationError, match="sign"):
                verify_answer({**VECTOR, "sign": variant}, KEY, sign_type=None, unsigned=False)
            with pytest.raises(VerificationError, match="sign"):
                verify_answer({**VECTOR, "sign": variant}, KEY, sign_type=sign_type, unsigned=False)


def test_tampered_answer_is_rejected() -> None:
    answer = {**VECTOR, "body": "tampered", "sign": VECTOR_MD5}
    with pytest.raises(VerificationError, match=r"sign does not match \(MD5\)"):
        verify_answer(answer, KEY, sign_type=None, unsigned=False)


def test_answer_signed_with_another_key_is_rejected() -> None:
    answer = {**VECTOR, "sign": sign_fields(VECTOR, "another-key")}
    with pytest.raises(VerificationError):
        verify_answer(answer, KEY, sign_type=None, unsigned=False)


def test_answer_signed_with_another_type_than_the_request_is_rejected() -> None:
    with pytest.raises(VerificationError, match="HMAC-SHA256"):
        verify_answer({**VECTOR, "sign": VECTOR_MD5}, KEY, sign_type="HMAC-SHA256", unsigned=False)


@pytest.mark.parametrize("sign", [None, ""])
def test_answer_without_sign_is_rejected(sign: str | None) -> None:
    answer: dict[str, Any] = {**VECTOR}
    if sign is not None:
        answer["sign"] = sign
    with pytest.raises(VerificationError, match="has no sign"):
        verify_answer(answer, KEY, sign_type=None, unsigned=False)


def test_unsigned_endpoint_answer_without_sign_is_accepted() -> None:
    verify_answer({"return_code": "SUCCESS"}, KEY, sign_type=None, unsigned=True)


def test_unsigned_endpoint_answer_with_a_wrong_sign_is_still_rejected() -> None:
    with pytest.raises(VerificationError, match="does not match"):
        verify_answer({**VECTOR, "sign": "0" * 32}, KEY, sign_type=None, unsigned=True)


@pytest.mark.parametrize("sign", ["ABC", "0" * 31, "0" * 40, "0" * 65])
def test_sign_of_an_unknown_length_is_rejected(sign: str) -> None:
    with pytest.raises(VerificationError, match=f"{len(sign)} characters"):
        verify_answer({**VECTOR, "sign": sign}, KEY, sign_type=None, unsigned=False)


def test_non_ascii_sign_is_rejected_not_crashed_on() -> None:
    with pytest.raises(VerificationError, match="does not match"):
        verify_answer({**VECTOR, "sign": "é" * 32}, KEY, sign_type=None, unsigned=False)


def test_duplicated_sign_is_rejected() -> None:
    answer = Transformer.to_dict(
        f"<xml><mch_id>10000100</mch_id><sign>{VECTOR_MD5}</sign><sign>X</sign></xml>"
    )
    with pytest.raises(VerificationError, match="'sign' is repeated or nested"):
        verify_answer(answer, KEY, sign_type=None, unsigned=False)


def test_injected_duplicate_field_is_rejected_even_with_a_valid_sign() -> None:
    xml = Transformer.to_xml({**VECTOR, "sign": VECTOR_MD5}).replace(
        "<body>test</body>", "<body>test</body><body>injected</body>"
    )
    with pytest.raises(VerificationError, match="'body' is repeated or nested"):
        verify_answer(Transformer.to_dict(xml), KEY, sign_type=None, unsigned=False)


def test_verification_refuses_an_unknown_sign_type() -> None:
    with pytest.raises(InvalidArgumentError, match="sign_type 'SHA1' is not supported"):
        verify_answer({**VECTOR, "sign": VECTOR_MD5}, KEY, sign_type="SHA1", unsigned=False)


def test_verification_without_secret_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="secret"):
        verify_answer({**VECTOR, "sign": VECTOR_MD5}, "", sign_type=None, unsigned=False)


def test_verification_errors_never_contain_the_key() -> None:
    with pytest.raises(VerificationError) as caught:
        verify_answer({**VECTOR, "sign": "0" * 32}, KEY, sign_type=None, unsigned=False)
    assert KEY not in str(caught.value)


def test_failure_then_verification_order_handles_an_unsigned_fail_answer() -> None:
    answer = Transformer.to_dict(
        "<xml><return_code>FAIL</return_code><return_msg>mch_id参数格式错误</return_msg></xml>"
    )
    assert answer_failure(answer) == {"return_code": "FAIL", "return_msg": "mch_id参数格式错误"}
    with pytest.raises(VerificationError):  # what happens if the order is not kept
        verify_answer(answer, KEY, sign_type=None, unsigned=False)


def test_a_full_exchange_round_trips() -> None:
    request = build({"out_trade_no": "1415659990", "total_fee": 1, "body": "JSAPI支付测试"})
    assert Transformer.to_dict(Transformer.to_xml(request)) == request
    answer = signed(
        {"return_code": "SUCCESS", "result_code": "SUCCESS", "prepay_id": "wx2014"}, "MD5"
    )
    parsed = Transformer.to_dict(Transformer.to_xml(answer))
    assert answer_failure(parsed) is None
    verify_answer(parsed, KEY, sign_type="MD5", unsigned=False)


# --- the signed fixtures -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "sign"),
    [
        ("paysuccess.notification.sample.xml", "B552ED6B279343CB493C5DD0D78AB241"),
        ("unifiedorder.sample.xml", "0CB01533B8C1EF103065174F50BCA001"),
        ("sendredpack.sample.xml", "E1EE61A91C8E90F299DE6AE075D60A2D"),
    ],
)
def test_signed_fixtures_parse_but_their_documentation_signs_match_no_known_key(
    name: str, sign: str
) -> None:
    # These are documentation samples: their signs were not made with the official test key
    # (nor any key they contain), so they can only show the parsing side of verification.
    fields = Transformer.to_dict((FIXTURES / name).read_bytes())
    assert fields["sign"] == sign
    for sign_type in SIGN_TYPES:
        with pytest.raises(VerificationError):
            verify_answer(fields, KEY, sign_type=sign_type, unsigned=False)
    resigned = signed({k: v for k, v in fields.items() if k != "sign"})
    verify_answer(resigned, KEY, sign_type=None, unsigned=False)


def test_getpublickey_answer_is_unsigned_and_accepted_as_such() -> None:
    fields = Transformer.to_dict((FIXTURES / "getpublickey.response.sample.xml").read_bytes())
    assert answer_failure(fields) is None
    assert is_unsigned_answer("risk/getpublickey")
    verify_answer(fields, KEY, sign_type=None, unsigned=True)
    with pytest.raises(VerificationError, match="has no sign"):
        verify_answer(fields, KEY, sign_type=None, unsigned=False)


# --- unsigned answer paths -----------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "pay/downloadbill",
        "pay/downloadfundflow",
        "mmpaymkttransfers/promotion/transfers",
        "mmpaymkttransfers/gettransferinfo",
        "mmpaymkttransfers/sendredpack",
        "mmpaymkttransfers/sendgroupredpack",
        "mmpaymkttransfers/gethbinfo",
        "mmpaymkttransfers/sendminiprogramhb",
        "mmpaysptrans/pay_bank",
        "mmpaysptrans/query_bank",
        "mmpaymkttransfers/pay_bank",  # the PHP SDK's spelling of the two above
        "mmpaymkttransfers/query_bank",
        "risk/getpublickey",
        "sandboxnew/pay/getsignkey",
    ],
)
def test_known_unsigned_endpoints_are_recognised(path: str) -> None:
    assert is_unsigned_answer(path)


@pytest.mark.parametrize(
    "path",
    [
        "sandboxnew/pay/downloadbill",
        "sandboxnew/mmpaymkttransfers/sendredpack",
        "/pay/downloadbill",
        "v2/pay/downloadbill",
        "/v2/sandboxnew/pay/downloadbill",
        "pay/downloadbill?x=1",
    ],
)
def test_sandbox_and_slash_or_v2_prefixed_forms_are_recognised(path: str) -> None:
    assert is_unsigned_answer(path)


@pytest.mark.parametrize(
    "path",
    [
        "pay/unifiedorder",
        "pay/orderquery",
        "secapi/pay/refund",
        "mmpaymkttransfers/send_coupon",
        "mmpaymkttransfers/query_coupon_stock",
        "sandboxnew/pay/unifiedorder",
        "pay/downloadbill/extra",
        "",
    ],
)
def test_signed_endpoints_are_not_in_the_unsigned_list(path: str) -> None:
    assert not is_unsigned_answer(path)


def test_unsigned_paths_are_written_without_prefix_or_slash() -> None:
    for path in UNSIGNED_ANSWER_PATHS:
        assert not path.startswith(("/", "v2/")), path
        assert path == path.strip(), path
