"""Test helpers: CloudEvents as a partner would publish them (raw nats-py), and settings for real servers."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from nats.aio.client import Client as NATS

from iioe.reference import AI_PROGRAMME_ID, load_programmes
from iioe.subjects import EVENTS_STREAM, event_filter, event_subject
from services.certification.settings import CertificationSettings
from tests.support.helpers import StoredMessage, eventually, stream_messages

OPERATOR_TOKEN = "test-operator-token"
AI_COURSES = load_programmes()[AI_PROGRAMME_ID].course_ids
TIME = "2025-04-01T10:00:00+08:00"
TEST_KEK = "T" * 43
"""The key-encryption key of in-process test services (base64url of 32 bytes), so no KEK file is written."""


def settings_for(nats_url: str, database_url: str, prefix: str, **overrides: Any) -> CertificationSettings:
    values: dict[str, Any] = {
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        "consumer_prefix": prefix,
        "outbox_poll_seconds": 0.1,
        "api_token": OPERATOR_TOKEN,
        "key_encryption_key": TEST_KEK,
        "ack_wait_seconds": 5.0,
        "retry_backoff_seconds": (0.2, 0.5),
        **overrides,
    }
    return CertificationSettings(**values)


def cloud_event(event_type: str, data: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": "urn:iioe:partner:test-lms",
        "type": event_type,
        "time": TIME,
        "subject": data["educator_id"],
        "datacontenttype": "application/json",
        "data": data,
    }


async def publish(nc: NATS, subject: str, event: dict[str, Any], msg_id: str | None = None) -> None:
    headers = {"Nats-Msg-Id": msg_id or event["id"], "Content-Type": "application/cloudevents+json"}
    await nc.jetstream().publish(subject, json.dumps(event).encode(), headers=headers)


async def register(nc: NATS, educator_id: str, institution: str = "must", language: str = "en") -> dict[str, Any]:
    data = {
        "educator_id": educator_id,
        "institution": institution,
        "language": language,
        "role": "educator",
        "registered_at": TIME,
    }
    event = cloud_event("org.iioe.registration.educator_registered.v1", data)
    await publish(nc, event_subject(institution, "educator_registered"), event)
    return event


async def complete(
    nc: NATS,
    educator_id: str,
    course_id: str,
    score: float,
    *,
    institution: str = "must",
    event_id: str | None = None,
    msg_id: str | None = None,
) -> dict[str, Any]:
    data = {
        "educator_id": educator_id,
        "institution": institution,
        "course_id": course_id,
        "score": score,
        "completed_at": TIME,
    }
    event = cloud_event("org.iioe.learning.course_completed.v1", data, event_id)
    await publish(nc, event_subject(institution, "course_completed"), event, msg_id)
    return event


async def issued_on_stream(nc: NATS, educator_id: str) -> list[StoredMessage]:
    msgs = await stream_messages(nc, EVENTS_STREAM, event_filter("certificate_issued"))
    return [m for m in msgs if m.json()["data"]["educator_id"] == educator_id]


async def wait_attempts(http: httpx.AsyncClient, educator_id: str, course_id: str, attempts: int) -> dict[str, Any]:
    """Wait until the service has counted `attempts` attempts of a course (so earlier events are processed)."""

    async def probe() -> dict[str, Any]:
        response = await http.get(
            f"/v1/educators/{educator_id}/progress", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        )
        if response.status_code != 200:
            return {}
        body: dict[str, Any] = response.json()
        for programme in body["programmes"]:
            for course in programme["courses"]:
                if course["course_id"] == course_id and course["attempts"] >= attempts:
                    return body
        return {}

    return await eventually(probe, timeout=30, what=f"{attempts} attempt(s) of {course_id}")


async def outbox_drained(http: httpx.AsyncClient) -> bool:
    return bool((await http.get("/healthz")).json().get("outbox_pending") == 0)
