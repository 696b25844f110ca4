"""Observability against real servers: `/metrics` moves with the work done, and one registration's
W3C trace id reaches the certification consumer's log line for its EducatorRegistered event."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

import httpx
import pytest
import structlog
from nats.aio.client import Client as NATS
from prometheus_client.parser import text_string_to_metric_families

import iioe.runtime.consumer
from iioe.reference import AI_PROGRAMME_ID
from iioe.subjects import EVENTS_STREAM, REGISTER_EDUCATOR, command_subject, event_subject
from services.certification.handlers import CONSUMER_NAME
from services.certification.main import create_app as create_certification
from services.registration.main import create_app as create_registration
from services.registration.settings import RegistrationSettings
from tests.support.certification import AI_COURSES, complete, settings_for
from tests.support.helpers import Infra, StoredMessage, eventually, running_app, stream_messages

pytestmark = pytest.mark.integration
TOKEN = "obs-test-token"


def registration_settings(infra: Infra, database_url: str, ref: str) -> RegistrationSettings:
    return RegistrationSettings(
        NATS_URL=infra.nats_url,
        DATABASE_URL=database_url,
        consumer_prefix=f"{ref}-",
        outbox_poll_seconds=0.1,
        api_token=TOKEN,
    )


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_count_events_handled_dead_lettered_and_http_requests(
    infra: Infra, database_url: str, nc: NATS, ref: str
) -> None:
    certification_app = create_certification(settings_for(infra.nats_url, database_url, f"{ref}-"))
    durable = f"{ref}-certification-{CONSUMER_NAME}"
    async with (
        running_app(create_registration(registration_settings(infra, database_url, ref))) as registration,
        running_app(certification_app) as certification,
    ):
        reply = await nc.request(
            command_subject("must", REGISTER_EDUCATOR),
            json.dumps({"full_name": "Batyn Sarnai", "email": f"s.{ref}@must.edu.mn", "language": "mn"}).encode(),
            timeout=10,
        )
        educator_id = json.loads(reply.data)["educator_id"]
        for course in AI_COURSES:
            await complete(nc, educator_id, course, 90)
        await nc.jetstream().publish(event_subject("must", "course_completed"), b"{not json")
        assert (await registration.get("/v1/institutions")).status_code == 200
        assert (await registration.get(f"/nowhere/{educator_id}")).status_code == 404

        async def certification_done() -> Samples:
            samples = await scrape(certification)
            handled = value(samples, "iioe_messages_handled_total", consumer=durable)
            dead = value(samples, "iioe_messages_dead_lettered_total", consumer=durable, reason="invalid_json")
            return samples if handled >= 1 + len(AI_COURSES) and dead == 1 else {}

        cert = await eventually(certification_done, what="certification metrics to count the events")
        assert value(cert, "iioe_certificates_issued_total", programme=AI_PROGRAMME_ID) == 1
        latency = value(
            cert,
            "iioe_event_latency_seconds_count",
            consumer=durable,
            event_type="org.iioe.learning.course_completed.v1",
        )
        assert latency == len(AI_COURSES)
        assert value(cert, "iioe_messages_failed_total", consumer=durable) == 0
        assert value(cert, "iioe_consumer_pending_messages", consumer=durable) == 0  # read from JetStream
        assert (("iioe_service_info", frozenset({("service", "certification")})), 1.0) in cert.items()

        async def registration_published() -> Samples:
            samples = await scrape(registration)
            return samples if value(samples, "iioe_outbox_published_total") >= 2 else {}  # event + contact

        reg = await eventually(registration_published, what="the registration outbox to publish")
        assert value(reg, "iioe_outbox_pending") == 0 and value(reg, "iioe_outbox_oldest_pending_age_seconds") == 0
        route = {"method": "GET", "route": "/v1/institutions", "status": "200"}
        assert value(reg, "iioe_http_requests_total", **route) == 1
        assert value(reg, "iioe_http_requests_total", method="GET", route="<unmatched>", status="404") == 1
        assert value(reg, "iioe_http_request_duration_seconds_count", method="GET", route="/v1/institutions") == 1
        text = (await registration.get("/metrics")).text
        assert educator_id not in text and f"s.{ref}" not in text  # no personal data, no raw paths


@pytest.fixture
def captured_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Every structlog event (DEBUG and up) with its context variables, as dicts."""
    entries: list[dict[str, Any]] = []

    def capture(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
        entries.append(dict(event_dict))
        raise structlog.DropEvent

    saved = structlog.get_config()
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, capture],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=False,
    )
    # a logger cached by an earlier in-process CLI run would bypass this configuration
    monkeypatch.setattr(iioe.runtime.consumer, "log", structlog.get_logger(iioe.runtime.consumer.__name__))
    try:
        yield entries
    finally:
        structlog.configure(**saved)


async def test_trace_id_of_an_http_registration_reaches_the_certification_consumer_log(
    infra: Infra, database_url: str, nc: NATS, ref: str, captured_logs: list[dict[str, Any]]
) -> None:
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    durable = f"{ref}-certification-{CONSUMER_NAME}"
    async with (
        running_app(create_registration(registration_settings(infra, database_url, ref))) as registration,
        running_app(create_certification(settings_for(infra.nats_url, database_url, f"{ref}-"))),
    ):
        response = await registration.post(
            "/v1/educators",
            json={
                "institution": "must",
                "full_name": "Batyn Sarnai",
                "email": f"t.{ref}@must.edu.mn",
                "language": "en",
            },
            headers={"traceparent": traceparent, "authorization": f"Bearer {TOKEN}"},
        )
        assert response.status_code == 201, response.text
        educator_id = response.json()["educator_id"]

        async def registered() -> list[StoredMessage]:
            msgs = await stream_messages(nc, EVENTS_STREAM, event_subject("must", "educator_registered"))
            return [m for m in msgs if m.json()["data"]["educator_id"] == educator_id]

        [message] = await eventually(registered, what="EducatorRegistered on the stream")
        assert message.headers["traceparent"].split("-")[1] == trace_id  # stored with the outbox row
        event_id = message.json()["id"]

        def consumer_lines() -> list[dict[str, Any]]:
            return [e for e in captured_logs if e.get("durable") == durable and e.get("event_id") == event_id]

        async def handled() -> list[dict[str, Any]]:
            return [e for e in consumer_lines() if e["event"] == "event handled"]

        [line] = await eventually(handled, what="the certification consumer to log the event")
        assert line["trace_id"] == trace_id
        assert line["event_type"] == "org.iioe.registration.educator_registered.v1"
        assert all(e["trace_id"] == trace_id for e in consumer_lines())

        # the same over a NATS request: its traceparent header reaches the event it causes
        nats_trace = secrets.token_hex(16)
        reply = await nc.request(
            command_subject("must", REGISTER_EDUCATOR),
            json.dumps({"full_name": "Dorj Bat", "email": f"n.{ref}@must.edu.mn", "language": "mn"}).encode(),
            timeout=10,
            headers={"traceparent": f"00-{nats_trace}-{secrets.token_hex(8)}-01"},
        )
        educator_id = json.loads(reply.data)["educator_id"]
        [message] = await eventually(registered, what="the second EducatorRegistered")
        assert message.headers["traceparent"].split("-")[1] == nats_trace
