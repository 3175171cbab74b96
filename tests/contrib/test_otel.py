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


async def test_durations_and_errors_are_measured_by_template_and_code(
    wechatpay_server: FakeWechatPay, anyio_backend: str
) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    client = wechatpay_server.client().insert("tracing", Tracing(meter_provider=provider))
    wechatpay_server.fail("POST", COUPON, "NOT_ENOUGH", status=403)
    try:
        with pytest.raises(APIError):
            await client[COUPON].post(openid="o-1", json=_json(wechatpay_server))
        await client[COUPON].post(openid="o-1", json=_json(wechatpay_server))
    finally:
        await client.aclose()
    data = reader.get_metrics_data()
    assert data is not None
    found = {
        metric.name: list(metric.data.data_points)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    durations = found["wechatpay.client.duration"]
    assert sorted(p.count for p in durations) == [1, 1]
    assert {p.attributes.get("http.response.status_code") for p in durations} == {200, 403}
    (errors,) = found["wechatpay.client.errors"]
    assert errors.value == 1
    assert errors.attributes["error.type"] == "NOT_ENOUGH"
    assert errors.attributes["url.template"] == COUPON


async def test_each_attempt_behind_a_retry_policy_is_numbered(
    wechatpay_server: FakeWechatPay,
    spans: tuple[TracerProvider, InMemorySpanExporter],
    anyio_backend: str,
) -> None:
    from wechatpay_chain import RetryPolicy

    async def no_wait(seconds: float) -> None:
        return None

    provider, exporter = spans
    client = wechatpay_server.client(retry=RetryPolicy(sleep=no_wait))
    client = client.insert("tracing", Tracing(provider), before="signer")
    wechatpay_server.fail("POST", COUPON, "SYSTEM_ERROR", status=500)
    try:
        await client[COUPON].post(openid="o-1", json=_json(wechatpay_server))
    finally:
        await client.aclose()
    attempts = [dict(s.attributes or {}).get("wechatpay.attempt", 1) for s in
                exporter.get_finished_spans()]
    assert attempts == [1, 2]
