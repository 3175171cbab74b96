"""OpenTelemetry spans come from the SDK itself, also on the direct (engine) path."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from wechatpay_chain import APIError, VerificationError
from wechatpay_chain.contrib.otel import Tracing
from wechatpay_chain.testing import FakeWechatPay

pytestmark = pytest.mark.anyio

COUPON = "v3/marketing/favor/users/{openid}/coupons"


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _json(server: FakeWechatPay) -> dict[str, str]:
    return {"stock_id": "9856000", "out_request_no": "otel-1", "appid": "wx1",
            "stock_creator_mchid": server.merchant.mchid}


async def test_each_call_gets_one_client_span_without_personal_data(
    wechatpay_server: FakeWechatPay,
    spans: tuple[TracerProvider, InMemorySpanExporter],
    anyio_backend: str,
) -> None:
    provider, exporter = spans
    client = wechatpay_server.client().insert("tracing", Tracing(provider))
    try:
        await client[COUPON].post(openid="o-secret-openid", json=_json(wechatpay_server))
    finally:
        await client.aclose()
    (span,) = exporter.get_finished_spans()
    assert span.name == f"WeChat Pay POST {COUPON}"
    assert span.kind is SpanKind.CLIENT
    attributes = dict(span.attributes or {})
    assert attributes["url.template"] == COUPON
    assert attributes["http.response.status_code"] == 200
    assert attributes["server.address"] == "127.0.0.1"
    assert str(attributes["wechatpay.request_id"]).startswith("08")
    assert "o-secret-openid" not in repr(attributes)
    assert span.status.status_code is StatusCode.UNSET


async def test_failures_mark_the_span_with_the_wechat_pay_code(
    wechatpay_server: FakeWechatPay,
    spans: tuple[TracerProvider, InMemorySpanExporter],
    anyio_backend: str,
) -> None:
    provider, exporter = spans
    client = wechatpay_server.client().insert("tracing", Tracing(provider))
    wechatpay_server.fail("POST", COUPON, "NOT_ENOUGH", status=403)
    try:
        with pytest.raises(APIError):
            await client[COUPON].post(openid="o-1", json=_json(wechatpay_server))
        wechatpay_server.misbehave("tamper_signature")
        with pytest.raises(VerificationError):
            await client[COUPON].post(openid="o-1", json=_json(wechatpay_server))
    finally:
        await client.aclose()
    refused, tampered = exporter.get_finished_spans()
    assert refused.status.status_code is StatusCode.ERROR
    assert dict(refused.attributes or {})["wechatpay.code"] == "NOT_ENOUGH"
    assert dict(refused.attributes or {})["http.response.status_code"] == 403
    assert tampered.status.status_code is StatusCode.ERROR
    assert dict(tampered.attributes or {})["error.type"] == "VerificationError"
