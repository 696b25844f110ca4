"""Metrics and trace propagation without servers: registries per app, route labels, traceparent."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import yaml
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from iioe.runtime.metrics import UNMATCHED_ROUTE, HttpMetrics, ServiceMetrics
from iioe.runtime.tracing import configure_tracing, continue_trace, current_trace_id, inject


def sample(metrics: ServiceMetrics, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return None


def test_each_service_has_its_own_registry() -> None:
    first, second = ServiceMetrics("registration"), ServiceMetrics("registration")  # no duplicate error
    first.handled("c1", "org.iioe.x.v1", datetime.now(UTC) - timedelta(seconds=2))
    first.dead_lettered("c1", "invalid_json")
    assert sample(first, "iioe_messages_handled_total", consumer="c1") == 1
    assert sample(first, "iioe_event_latency_seconds_count", consumer="c1", event_type="org.iioe.x.v1") == 1
    assert (sample(first, "iioe_event_latency_seconds_sum", consumer="c1", event_type="org.iioe.x.v1") or 0) >= 2
    assert sample(first, "iioe_messages_dead_lettered_total", consumer="c1", reason="invalid_json") == 1
    assert sample(second, "iioe_messages_handled_total", consumer="c1") is None


def test_service_counters_typed_and_by_name() -> None:
    metrics = ServiceMetrics("certification")
    assert sample(metrics, "iioe_mails_total", outcome="failed") == 0  # exists before the first mail
    metrics.certificate_issued("ai-in-higher-education")
    metrics.mail_sent()
    metrics.webhook_failed()
    metrics.counter("credits_recognised_total", "Credit recognitions").inc()
    metrics.counter("iioe_credits_recognised_total").inc()  # the same counter, found by name
    assert sample(metrics, "iioe_certificates_issued_total", programme="ai-in-higher-education") == 1
    assert sample(metrics, "iioe_mails_total", outcome="sent") == 1
    assert sample(metrics, "iioe_webhooks_total", outcome="failed") == 1
    assert sample(metrics, "iioe_credits_recognised_total") == 2


async def test_http_requests_are_labelled_by_route_template_never_by_path() -> None:
    app = FastAPI()

    @app.get("/v1/educators/{educator_id}")
    async def educator(educator_id: str) -> dict[str, str]:
        return {"educator_id": educator_id}

    metrics = ServiceMetrics("registration")
    app.add_middleware(HttpMetrics, metrics=metrics, routes=app.router.routes)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/v1/educators/edu-123")).status_code == 200
        assert (await client.get("/v1/educators/edu-456")).status_code == 200
        assert (await client.get("/secret/edu-789")).status_code == 404
    route = "/v1/educators/{educator_id}"
    assert sample(metrics, "iioe_http_requests_total", method="GET", route=route, status="200") == 2
    assert sample(metrics, "iioe_http_requests_total", method="GET", route=UNMATCHED_ROUTE, status="404") == 1
    assert sample(metrics, "iioe_http_request_duration_seconds_count", method="GET", route=route) == 2
    assert b"edu-" not in metrics.exposition()


def test_traceparent_is_continued_and_injected() -> None:
    configure_tracing("unit")
    trace_id = secrets.token_hex(16)
    incoming = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    with continue_trace(incoming, "consume test") as fields:
        assert fields == {"trace_id": trace_id} and current_trace_id() == trace_id
        outgoing = inject({"Nats-Msg-Id": "e1"})
    assert outgoing["Nats-Msg-Id"] == "e1"
    version, carried, span_id, flags = outgoing["traceparent"].split("-")
    assert (version, carried, flags) == ("00", trace_id, "01") and span_id != incoming["traceparent"].split("-")[2]
    assert inject({"Nats-Msg-Id": "e2"}) == {"Nats-Msg-Id": "e2"}  # outside any trace: unchanged
    assert current_trace_id() is None


def test_a_message_without_traceparent_starts_a_trace() -> None:
    configure_tracing("unit")
    with continue_trace(None, "consume test") as fields:
        assert len(fields["trace_id"]) == 32 and int(fields["trace_id"], 16) != 0
    with continue_trace({"traceparent": "garbage"}, "consume test") as fields:
        assert len(fields["trace_id"]) == 32


def test_dashboard_and_alerts_use_only_metrics_that_exist() -> None:
    root = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
    dashboard = json.loads((root / "iioe-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    rules = yaml.safe_load((root / "alerts.yml").read_text())
    exprs += [str(r["expr"]) for g in rules["groups"] for r in g["rules"]]
    known: set[str] = set()
    for family in ServiceMetrics("any").registry.collect():
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}[family.type]
        known |= {family.name + suffix for suffix in suffixes}
    used = {name for expr in exprs for name in re.findall(r"\biioe_[a-z_]+", expr)}
    assert used and used <= known, used - known
    assert {p["gridPos"]["y"] for p in dashboard["panels"]}  # a valid Grafana layout


RECORDING = """
import secrets
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from iioe.runtime.tracing import configure_tracing, continue_trace, inject
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)  # as `opentelemetry-instrument` or an OTLP setup would
configure_tracing("unit")
trace_id = secrets.token_hex(16)
with continue_trace({"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}, "consume c") as fields:
    assert fields == {"trace_id": trace_id}, fields
    assert inject({})["traceparent"].split("-")[1] == trace_id
[span] = exporter.get_finished_spans()
assert span.name == "consume c" and format(span.context.trace_id, "032x") == trace_id
print("ok")
"""


def test_with_a_recording_provider_spans_are_recorded_in_the_same_trace() -> None:
    """Run apart: a tracer provider is process-global and cannot be unset."""
    done = subprocess.run([sys.executable, "-c", RECORDING], capture_output=True, timeout=60)
    assert done.stdout.strip() == b"ok", done.stderr.decode()
